# cargo-shim: build, test, demo, chaos, bench, install.
GO      ?= go
PREFIX  ?= /usr/local
# The version is the newest vX.Y.Z tag (git describe: 0.2.0, or
# 0.2.0-3-g1a2b3c4d5 three commits later); a clone without tags (CI's
# shallow clones) builds as 0.0.0-dev. Commit and date come from HEAD.
VERSION ?= $(or $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//'),0.0.0-dev)
COMMIT  ?= $(shell git rev-parse --short=9 HEAD 2>/dev/null)
DATE    ?= $(shell git log -1 --format=%cs 2>/dev/null)
PKG     := github.com/cargo-shim/cargo-shim/shim
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)

.PHONY: build test fuzz multihost demo chaos bench install clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cargo ./cmd/cargo
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cargo-shim ./cmd/cargo-shim

# Unit tests, then the end-to-end suite (real cargo, loopback registry).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...

# Each fuzz target for FUZZTIME (its seed corpus in testdata/fuzz runs in
# `make test`). A crasher lands in testdata/fuzz/<target>/: fix it, keep it.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzParseCargoLock FuzzParseState FuzzParsePlan FuzzReadTarball
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./shim/store/ || exit 1; \
	done

# The many-runners tests with runners on two "hosts": two FUSE mounts of a
# loopback GlusterFS volume, set up and torn down here (root and FUSE needed;
# skipped with a message otherwise). Then the same on real kernel NFS in a
# QEMU guest (integration/multihost/nfs/run; skipped where QEMU cannot run).
multihost:
	GO=$(GO) integration/multihost/run
	GO=$(GO) integration/multihost/nfs/run

demo: build
	$(GO) run ./integration/cmd/demo

chaos:
	CARGO_SHIM_CHAOS=long $(GO) test -count=1 -timeout 120m -run 'Chaos' -v ./integration/

bench: build
	$(GO) run ./integration/cmd/bench

# The drop-in goes into a directory of its own, so that putting it first on
# PATH shadows cargo and nothing else.
install: build
	install -d $(DESTDIR)$(PREFIX)/lib/cargo-shim/bin $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/cargo $(DESTDIR)$(PREFIX)/lib/cargo-shim/bin/cargo
	install -m 0755 bin/cargo-shim $(DESTDIR)$(PREFIX)/bin/cargo-shim
	@echo "cargo-shim installed: the drop-in cargo in $(PREFIX)/lib/cargo-shim/bin,"
	@echo "the admin command in $(PREFIX)/bin. Put both on PATH, the drop-in first:"
	@echo "  export PATH=\"$(PREFIX)/lib/cargo-shim/bin:\$$PATH\"   # cargo -> the shim"
	@echo "  export PATH=\"\$$PATH:$(PREFIX)/bin\"                     # cargo-shim, if not there yet"

clean:
	rm -rf bin
