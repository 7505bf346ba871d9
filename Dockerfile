# syntax=docker/dockerfile:1
# A rust:1 runner image with cargo-shim in front of cargo.
# The Go image's version is go.mod's (a test keeps them equal): an older
# one would refuse the module under GOTOOLCHAIN=local.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY . .
# The version is shim/version.go's; CGO is off, so the binaries run on any
# glibc or musl.
RUN make build

FROM rust:1
COPY --from=build /src/bin/cargo /usr/local/lib/cargo-shim/bin/cargo
COPY --from=build /src/bin/cargo-shim /usr/local/bin/cargo-shim
ENV PATH=/usr/local/lib/cargo-shim/bin:$PATH
# cargo --version passes through to the real cargo (rustup's proxy).
RUN cargo --version && cargo-shim --version
