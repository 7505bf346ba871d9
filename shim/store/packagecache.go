package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// Cargo serializes downloads and extraction with flock on
// $CARGO_HOME/.package-cache (and .package-cache-mutate for GC), in the
// CARGO_HOME root, not in registry/ (util/cache_lock.rs). Runners that share
// only registry/ therefore do not coordinate at all: 3 of 4 cold runners fail
// with ".cargo-ok: File exists". Pointing each home's lock files at one file
// inside the shared registry makes cargo's own lock host-wide, so each crate
// is downloaded and unpacked by exactly one runner (CARGO-FACTS.md 4).
//
// The cost: downloads and resolution of all runners on the registry take
// turns (cargo holds that lock only for those phases, never while compiling),
// so warm runners do not wait for each other's builds.

var cargoLockNames = []string{".package-cache", ".package-cache-mutate"}

// CargoLockDir holds the shared targets of every home's cargo lock files.
func (r Registry) CargoLockDir() string { return filepath.Join(r.ShimDir(), "cargo") }

// DownloadLock is the shared file behind every home's .package-cache.
func (r Registry) DownloadLock() string { return filepath.Join(r.CargoLockDir(), ".package-cache") }

// SharePackageCacheLock makes home's cargo lock files symlinks into the registry.
// The fast path is one readlink per file.
func (r Registry) SharePackageCacheLock(home string) error {
	for _, name := range cargoLockNames {
		link := filepath.Join(home, name)
		target := filepath.Join(r.CargoLockDir(), name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		if err := ensureLockTarget(target); err != nil {
			return err
		}
		fi, err := os.Lstat(link)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.MkdirAll(home, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode().IsRegular():
			// A cargo of this home that holds the old file right now would
			// not see the new one: switch only while nobody holds it.
			l, err := lockfile.Try(link, lockfile.Exclusive)
			if err != nil {
				return fmt.Errorf("%s is in use; cargo's lock will be shared from the next run on: %w", link, err)
			}
			defer l.Release()
		case fi.Mode()&fs.ModeSymlink != 0:
			// Pointing elsewhere (another registry path): repoint it.
		default:
			return fmt.Errorf("%s is not a file", link)
		}
		tmp := link + ".cargo-shim-" + strconv.Itoa(os.Getpid())
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, link); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	return nil
}

func ensureLockTarget(p string) error {
	l, err := lockfile.Try(p, lockfile.Shared)
	if lockfile.IsBusy(err) {
		return nil // exists, and a cargo holds it
	}
	if err != nil {
		return err
	}
	return l.Release()
}

// Quiesce waits until no cargo on the registry is downloading or unpacking
// (cargo holds the shared download lock exclusively while it does), and
// holds that lock shared while fn runs: a half-written .crate or a
// marker-less extraction seen under it is damage, not work in progress.
// Cargo never waits for a per-crate lock, so waiting here while holding one
// cannot deadlock.
func (r Registry) Quiesce(ctx context.Context, waiting func(), fn func()) error {
	l, err := lockfile.Acquire(ctx, r.DownloadLock(), lockfile.Shared, lockfile.Options{Waiting: func(string) {
		if waiting != nil {
			waiting()
		}
	}})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("timed out waiting for the package cache lock %s", r.DownloadLock())
		}
		return err
	}
	defer l.Release()
	fn()
	return nil
}
