# cargo-shim: build, test, demo, chaos, bench, install.
GO      ?= go
PREFIX  ?= /usr/local
# The version is the constant in shim/version.go (`make release` sets it);
# git tags are not read. Commit and date come from HEAD when .git is there.
VERSION := $(shell sed -n 's/^const Version = "\(.*\)"$$/\1/p' shim/version.go)
COMMIT  ?= $(shell git rev-parse --short=9 HEAD 2>/dev/null)
DATE    ?= $(shell git log -1 --format=%cs 2>/dev/null)
PKG     := github.com/cargo-shim/cargo-shim/shim
LDFLAGS := -s -w -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)
# The release architectures of `make dist`.
DIST_ARCHES := amd64 arm64

.PHONY: build test fuzz multihost demo chaos bench bench-userfacing install clean dist release

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

# Only the user-facing rows of BENCHMARKS.md (plain vs drop-in no-op cargo
# check at 24/100/400 crates, the process floor, syscalls per crate), 15
# interleaved runs, spliced into BENCHMARKS.md: a few minutes.
bench-userfacing: build
	$(GO) run ./integration/cmd/bench -userfacing only

# The drop-in goes into a directory of its own, so that putting it first on
# PATH shadows cargo and nothing else. WITH_SYSTEMD=1 also installs the gc
# service and timer (enable them yourself: they need --registry); WITH_CRON=1
# the cron file (edit its registry path).
SYSTEMDDIR ?= /etc/systemd/system
CRONDIR    ?= /etc/cron.d
install: build
	install -d $(DESTDIR)$(PREFIX)/lib/cargo-shim/bin $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/cargo $(DESTDIR)$(PREFIX)/lib/cargo-shim/bin/cargo
	install -m 0755 bin/cargo-shim $(DESTDIR)$(PREFIX)/bin/cargo-shim
ifeq ($(WITH_SYSTEMD),1)
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|/usr/local/bin/cargo-shim|$(PREFIX)/bin/cargo-shim|' contrib/systemd/cargo-shim-gc.service > $(DESTDIR)$(SYSTEMDDIR)/cargo-shim-gc.service
	install -m 0644 contrib/systemd/cargo-shim-gc.timer $(DESTDIR)$(SYSTEMDDIR)/cargo-shim-gc.timer
	@echo "systemd units in $(SYSTEMDDIR): set the registry in cargo-shim-gc.service, then"
	@echo "  systemctl daemon-reload && systemctl enable --now cargo-shim-gc.timer"
endif
ifeq ($(WITH_CRON),1)
	install -d $(DESTDIR)$(CRONDIR)
	sed 's|/usr/local/bin/cargo-shim|$(PREFIX)/bin/cargo-shim|' contrib/cron/cargo-shim-gc > $(DESTDIR)$(CRONDIR)/cargo-shim-gc
	chmod 0644 $(DESTDIR)$(CRONDIR)/cargo-shim-gc
	@echo "cron file in $(CRONDIR)/cargo-shim-gc: set the registry path in it"
endif
	@echo "cargo-shim installed: the drop-in cargo in $(PREFIX)/lib/cargo-shim/bin,"
	@echo "the admin command in $(PREFIX)/bin. Put both on PATH, the drop-in first:"
	@echo "  export PATH=\"$(PREFIX)/lib/cargo-shim/bin:\$$PATH\"   # cargo -> the shim"
	@echo "  export PATH=\"\$$PATH:$(PREFIX)/bin\"                     # cargo-shim, if not there yet"

# Release tarballs in dist/: one per architecture, laid out as PREFIX is
# (bin/cargo-shim, lib/cargo-shim/bin/cargo) with the licences, README,
# CHANGELOG and contrib/, and SHA256SUMS over them. Reproducible: sorted
# entries, owner 0, mtimes of the commit date.
dist:
	rm -rf dist && mkdir -p dist
	@set -e; for arch in $(DIST_ARCHES); do \
		name=cargo-shim-$(VERSION)-linux-$$arch; d=dist/$$name; \
		mkdir -p $$d/bin $$d/lib/cargo-shim/bin; \
		GOOS=linux GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$d/lib/cargo-shim/bin/cargo ./cmd/cargo; \
		GOOS=linux GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$d/bin/cargo-shim ./cmd/cargo-shim; \
		cp LICENSE LICENSE-MIT LICENSE-APACHE README.md CHANGELOG.md $$d/; \
		cp -R contrib $$d/contrib; \
		tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='$(or $(DATE),1970-01-01) 00:00Z' \
			-C dist -czf dist/$$name.tar.gz $$name; \
		rm -rf $$d; \
	done
	cd dist && sha256sum *.tar.gz > SHA256SUMS
	@cat dist/SHA256SUMS

# make release VERSION=x.y.z: the version constant and CHANGELOG.md's
# "(unreleased)" heading become x.y.z; commit and tag yourself.
release:
	@case '$(origin VERSION)' in command\ line) ;; *) echo "usage: make release VERSION=x.y.z" >&2; exit 2;; esac
	@echo '$(VERSION)' | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$' || { echo "error: VERSION=$(VERSION) is not x.y.z" >&2; exit 2; }
	@grep -q '^## .* (unreleased)$$' CHANGELOG.md || { echo "error: CHANGELOG.md has no '## ... (unreleased)' heading" >&2; exit 2; }
	sed -i 's/^const Version = ".*"$$/const Version = "$(VERSION)"/' shim/version.go
	sed -i '0,/^## .* (unreleased)$$/s//## $(VERSION) ($(shell date -u +%F))/' CHANGELOG.md
	@echo "now: git commit -am 'Release $(VERSION)' && git tag v$(VERSION)"

clean:
	rm -rf bin dist
