# syntax=docker/dockerfile:1
# A rust:1 runner image with cargo-shim in front of cargo.
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
# The version comes from the newest vX.Y.Z tag when .git is in the context
# (else 0.0.0-dev); CGO is off, so the binaries run on any glibc or musl.
RUN make build

FROM rust:1
COPY --from=build /src/bin/cargo /usr/local/lib/cargo-shim/bin/cargo
COPY --from=build /src/bin/cargo-shim /usr/local/bin/cargo-shim
ENV PATH=/usr/local/lib/cargo-shim/bin:$PATH
# cargo --version passes through to the real cargo (rustup's proxy).
RUN cargo --version && cargo-shim --version
