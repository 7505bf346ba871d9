package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// LastUse is when a crate was last used: its lock file's mtime (every run
// that pins it touches it, at most once an hour), else the newest of its
// marker's and tarball's mtimes (when it was extracted or downloaded).
func (r Registry) LastUse(i Instance) time.Time {
	if fi, err := os.Lstat(r.LockPath(i)); err == nil {
		return fi.ModTime()
	}
	var t time.Time
	for _, p := range []string{filepath.Join(r.Extraction(i), markerName), r.Extraction(i), r.Tarball(i)} {
		if fi, err := os.Lstat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// Removal is what Remove deleted (or, dry, would delete).
type Removal struct {
	Extraction bool
	Tarball    bool
	Bytes      int64
}

// Remove deletes i's extraction and, if tarballToo, its tarball, but only if
// no build holds i (exclusive try-lock: never waits) and only if still
// eligible(lastUse) once the lock is held. It returns ErrInUse when busy.
func (r Registry) Remove(i Instance, tarballToo bool, eligible func(lastUse time.Time) (extraction, tarball bool)) (Removal, error) {
	var rm Removal
	_, statErr := os.Lstat(r.LockPath(i))
	before := r.LastUse(i)
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	if lockfile.IsBusy(err) {
		return rm, ErrInUse
	}
	if err != nil {
		return rm, err
	}
	defer lk.Release()
	if statErr != nil {
		// We just created the lock file: its mtime says "now", but the crate
		// was last used when the scan said.
		_ = os.Chtimes(r.LockPath(i), before, before)
	}
	// The lock file's mtime may have been touched between the scan and the
	// lock: decide again now that no build can start using it.
	ext, tb := eligible(r.LastUse(i))
	tb = tb && tarballToo
	if ext {
		root := r.Extraction(i)
		if _, err := os.Lstat(root); err == nil {
			n := DiskUsage(root) + Blocks(r.StatePath(i))
			if err := r.trash(root, i); err != nil {
				return rm, err
			}
			os.Remove(r.StatePath(i))
			rm.Extraction, rm.Bytes = true, rm.Bytes+n
		}
	}
	if tb {
		p := r.Tarball(i)
		if _, err := os.Lstat(p); err == nil {
			n := Blocks(p)
			if err := os.Remove(p); err != nil {
				return rm, err
			}
			rm.Tarball, rm.Bytes = true, rm.Bytes+n
		}
	}
	_, errExt := os.Lstat(r.Extraction(i))
	_, errTb := os.Lstat(r.Tarball(i))
	if errors.Is(errExt, fs.ErrNotExist) && errors.Is(errTb, fs.ErrNotExist) {
		// Nothing left to guard. Removing a lock file we hold is safe: a
		// process that opened the old file finds, after locking, that the
		// path no longer names it, and locks the new one.
		os.Remove(r.LockPath(i))
		os.Remove(r.StatePath(i))
	}
	return rm, nil
}

// Usage is what Remove would free for i: its extraction (with its state
// record) and its tarball, as chosen. gc's dry run and its report agree.
func (r Registry) Usage(i Instance, extraction, tarball bool) int64 {
	var n int64
	if extraction {
		n += DiskUsage(r.Extraction(i)) + Blocks(r.StatePath(i))
	}
	if tarball {
		n += Blocks(r.Tarball(i))
	}
	return n
}

// StaleTemps lists temp dirs of killed repairs older than minAge, with the
// instance each belongs to.
func (r Registry) StaleTemps(minAge time.Duration) map[string]Instance {
	out := map[string]Instance{}
	for _, d := range r.Regdirs() {
		parent := filepath.Join(r.Root, "src", d)
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			stem, ok := tempStem(e.Name())
			if !ok {
				continue
			}
			name, version, ok := splitNameVersion(stem)
			if !ok {
				continue
			}
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) >= minAge {
				out[filepath.Join(parent, e.Name())] = Instance{Crate: Crate{Name: name, Version: version}, Regdir: d}
			}
		}
	}
	return out
}

// tempStem reads "<name>-<version>" from the name of a repair's temp dir
// (.cargo-shim-tmp-<name>-<version>-<pid>[-old]) or of a directory set aside
// (.cargo-shim-trash-<name>-<version>.<ns>.<pid>).
func tempStem(entry string) (string, bool) {
	if rest, ok := strings.CutPrefix(entry, tmpPrefix); ok {
		rest = strings.TrimSuffix(rest, "-old")
		if k := strings.LastIndexByte(rest, '-'); k > 0 && isDigits(rest[k+1:]) {
			return rest[:k], true
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(entry, asidePrefix); ok {
		parts := strings.Split(rest, ".")
		if len(parts) >= 3 && isDigits(parts[len(parts)-1]) && isDigits(parts[len(parts)-2]) {
			return strings.Join(parts[:len(parts)-2], "."), true
		}
	}
	return "", false
}

// RemoveTemp deletes one stale temp dir under its crate's exclusive lock.
func (r Registry) RemoveTemp(p string, i Instance) (int64, error) {
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	if lockfile.IsBusy(err) {
		return 0, ErrInUse
	}
	if err != nil {
		return 0, err
	}
	defer lk.Release()
	n := DiskUsage(p)
	return n, os.RemoveAll(p)
}

// InUse reports whether a build holds i now (an exclusive try-lock fails).
func (r Registry) InUse(i Instance) bool {
	if _, err := os.Lstat(r.LockPath(i)); err != nil {
		return false // no lock file: no build through a shim has it
	}
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	if err != nil {
		return lockfile.IsBusy(err)
	}
	lk.Release()
	return false
}
