package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/safefs"
)

// Cargo serializes downloads and extraction with flock on
// $CARGO_HOME/.package-cache (and .package-cache-mutate for GC), in the
// CARGO_HOME root, not in registry/ (util/cache_lock.rs). Runners that share
// only registry/ therefore do not coordinate at all: 3 of 4 cold runners fail
// with ".cargo-ok: File exists". Pointing each home's lock files at one file
// in the shared registry makes cargo's own lock host-wide, so each crate is
// downloaded and unpacked by exactly one runner.
//
// The cost: downloads and resolution of all runners on the registry take
// turns (cargo holds that lock only for those phases, never while compiling),
// so warm runners do not wait for each other's builds.
//
// Homes outlive their registry (a wipe, a re-created cache volume). The
// links therefore name files directly in the registry root, never deeper:
// the root is the mount point or the symlink that makes it shared, so it
// exists whenever the home can reach the registry at all, and cargo's own
// open(O_CREAT) through a dangling link creates the file again. A plain
// cargo in such a home (no shim on PATH, a nested cargo, after uninstall)
// never fails on the link. Homes whose registry is not shared with anyone (a
// laptop) keep cargo's plain files.

// cargoLockNames: each home file of cargo's, and the registry file it is
// pointed at when the registry is shared.
var cargoLockNames = [2][2]string{
	{".package-cache", ".cargo-shim-package-cache"},
	{".package-cache-mutate", ".cargo-shim-package-cache-mutate"},
}

// oldCargoLockDir is where earlier versions pointed the links: a directory
// that a wipe of the registry removes, leaving every home's cargo broken.
// Such links are still recognised as the shim's own and healed.
const oldCargoLockDir = ".cargo-shim/cargo"

// DownloadLock is the shared file behind every home's .package-cache.
func (r Registry) DownloadLock() string { return filepath.Join(r.Root, cargoLockNames[0][1]) }

// ShareMode says when a home's cargo lock is pointed into the registry.
type ShareMode int

const (
	// ShareAuto: only when the registry is shared (see RegistryShared).
	ShareAuto ShareMode = iota
	// ShareAlways: whatever the registry looks like.
	ShareAlways
	// ShareNever: leave the home alone.
	ShareNever
)

// RegistryShared reports whether root is a registry other homes can reach:
// not home/registry itself, a symlink, or a mount point (a bind mount or a
// volume). A plain directory inside the home is nobody else's. One statx.
func RegistryShared(home, root string) bool {
	if filepath.Clean(root) != filepath.Join(home, "registry") {
		return true
	}
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, root, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE|unix.STATX_INO, &stx)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return otherDevice(home, root)
		}
		return false // not there yet: cargo will make a plain directory
	}
	if stx.Mode&unix.S_IFMT == unix.S_IFLNK {
		return true
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	return otherDevice(home, root)
}

// otherDevice is the mount-point test of kernels before 5.8; it misses a
// bind mount from the home's own filesystem.
func otherDevice(home, root string) bool {
	var a, b unix.Stat_t
	return unix.Stat(home, &a) == nil && unix.Stat(root, &b) == nil && a.Dev != b.Dev
}

// SharePackageCacheLock makes home's cargo lock files links into the
// registry root when the registry is shared (or mode says always), and turns
// links the shim made earlier back into plain files when it is not. It
// returns whether the home's cargo now locks the registry's files. The warm
// path is a readlink per file, one lstat and one fstat (of the registry
// descriptor, which the run opened first: everything here resolves beneath
// it). An error wrapping ErrNotSafeForRoot is a choice, not a failure.
func (r Registry) SharePackageCacheLock(home string, mode ShareMode) (bool, error) {
	shared, err := r.sharePackageCacheLock(home, mode)
	if err != nil {
		// cargo follows these links: none may stay pointing at a target that
		// is not a plain file inside the registry (another uid may have put
		// a symlink there), nor, for root, at one another uid may replace;
		// cargo then keeps its own lock files.
		for _, n := range cargoLockNames {
			link := filepath.Join(home, n[0])
			if cur, lerr := os.Readlink(link); lerr == nil && cur == filepath.Join(r.Root, n[1]) {
				os.Remove(link)
			}
		}
		return false, err
	}
	return shared, nil
}

// ErrNotRegular is what an open of a planted FIFO, socket or device in the
// registry returns (the one rule, in safefs): refused without blocking.
var ErrNotRegular = safefs.ErrNotRegular

// ErrNotSafeForRoot: a root run does not point its home's cargo lock at a
// file another uid could replace (with a symlink, so that root's cargo would
// create a file wherever it points).
var ErrNotSafeForRoot = errors.New("root does not share cargo's package cache lock")

// lockTargetsTrusted checks, without following links, that the registry
// files the home's links name are regular files: cargo opens them through
// the links, creating what a dangling symlink would point at. For root it
// also checks that no other uid can replace them (rootMayShare).
func (r Registry) lockTargetsTrusted() error {
	var sts [len(cargoLockNames)]unix.Stat_t
	for k, n := range cargoLockNames {
		p := filepath.Join(r.Root, n[1])
		if err := r.lstatRaw(p, &sts[k]); err != nil {
			return err
		}
		if sts[k].Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("%s: %w", p, safefs.ErrNotRegular)
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	return r.rootMayShare(sts[:])
}

// RootShareRefusal says why a root run would not share cargo's lock on this
// registry (empty: it would), for `cargo-shim status`.
func (r Registry) RootShareRefusal() string {
	var sts [len(cargoLockNames)]unix.Stat_t
	for k, n := range cargoLockNames {
		if err := r.lstatRaw(filepath.Join(r.Root, n[1]), &sts[k]); errors.Is(err, fs.ErrNotExist) {
			sts[k] = unix.Stat_t{Mode: unix.S_IFREG, Nlink: 1} // root would create it
		} else if err != nil {
			return err.Error()
		}
	}
	if err := r.rootMayShare(sts[:]); err != nil {
		return err.Error()
	}
	return ""
}

// errOwnedByOther: the one failure of rootMayShare root can mend itself.
var errOwnedByOther = errors.New("root can make it its own")

// rootMayShare is the rule for root: the entries at the files' names can be
// replaced by no uid but root. Either the registry root is root's and
// writable by nobody else, or it is root's and sticky (01777, 03775) and
// the files are root's, with no other name (a hard link another uid made).
// The path to the registry root is the operator's and trusted.
func (r Registry) rootMayShare(files []unix.Stat_t) error {
	var dir unix.Stat_t
	if err := r.rootStat(&dir); err != nil {
		return err
	}
	if dir.Uid == 0 && dir.Mode&0o022 == 0 {
		return nil
	}
	if dir.Uid == 0 && dir.Mode&unix.S_ISVTX != 0 {
		for k, st := range files {
			if st.Uid != 0 || st.Nlink != 1 {
				return fmt.Errorf("%w: %s is owned by uid %d in a directory other uids write (docs/package-cache-lock.md): %w",
					ErrNotSafeForRoot, filepath.Join(r.Root, cargoLockNames[k][1]), st.Uid, errOwnedByOther)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s (uid %d, mode %04o) lets another uid replace the lock file with a symlink; make it root's and not writable by others, or sticky (docs/package-cache-lock.md)",
		ErrNotSafeForRoot, r.Root, dir.Uid, dir.Mode&0o7777)
}

// OwnPackageCacheLock makes the registry's shared cargo lock files root's
// (`cargo-shim init` and root runs, in a sticky registry root that is
// root's): a file of another uid there, or a FIFO, symlink or device, is
// replaced by a fresh empty root-owned file renamed over it, while no
// cargo holds the old one (busy: left for the next root run). Only for
// root: a sticky directory lets root, and nobody else, replace another
// uid's entry.
func (r Registry) OwnPackageCacheLock() error {
	if os.Geteuid() != 0 {
		return nil
	}
	d, err := r.fsys()
	if err != nil {
		return err
	}
	for _, n := range cargoLockNames {
		var st unix.Stat_t
		err := d.LstatRaw(n[1], &st)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := ensureLockTarget(filepath.Join(r.Root, n[1])); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Uid == 0 && st.Nlink == 1:
			continue
		}
		if err := replaceLockTarget(d, n[1], st.Mode&unix.S_IFMT == unix.S_IFREG); err != nil {
			return err
		}
	}
	return nil
}

// replaceLockTarget renames a fresh 0666 file over rel, holding the old one
// exclusively if it is a regular file (a cargo inside it would otherwise
// share its lock with none of the cargos that open the new one).
func replaceLockTarget(d *safefs.Dir, rel string, regular bool) error {
	if regular {
		l, err := lockfile.Try(d.Join(rel), lockfile.Exclusive)
		if err != nil {
			return fmt.Errorf("%s is another uid's and in use; the next root run replaces it: %w", d.Join(rel), err)
		}
		defer l.Release()
	}
	tmp := rel + ".cargo-shim-" + strconv.Itoa(os.Getpid())
	d.Remove(tmp)
	f, err := d.Create(tmp, 0o666)
	if err != nil {
		return err
	}
	f.Close()
	if err := d.Rename(tmp, d, rel); err != nil {
		d.Remove(tmp)
		return err
	}
	return nil
}

func (r Registry) sharePackageCacheLock(home string, mode ShareMode) (bool, error) {
	if r.warmShared(home) {
		return true, r.lockTargetsTrusted()
	}
	share := mode == ShareAlways || RegistryShared(home, r.Root)
	if !share {
		for _, n := range cargoLockNames {
			// Busy: a cargo of this home is inside its lock; next run.
			if err := restorePlain(filepath.Join(home, n[0]), false); err != nil && !lockfile.IsBusy(err) {
				return false, err
			}
		}
		return false, nil
	}
	// The registry exists (the run made it before opening it first): the
	// targets are made, then judged, and only then linked to.
	err := r.ensureLockTargets()
	if err == nil {
		err = r.lockTargetsTrusted()
	}
	if os.Geteuid() == 0 && (errors.Is(err, errOwnedByOther) || errors.Is(err, ErrNotRegular)) {
		// Proven not root's regular file: root replaces it with its own
		// (another uid's FIFO, symlink or device is never opened).
		if err = r.OwnPackageCacheLock(); err == nil {
			err = r.lockTargetsTrusted()
		}
	}
	if err != nil {
		return false, err
	}
	for _, n := range cargoLockNames {
		if err := linkLock(filepath.Join(home, n[0]), filepath.Join(r.Root, n[1])); err != nil {
			return false, err
		}
	}
	return true, nil
}

// warmShared: both links name their registry file and the first file is
// there, readable and writable by every runner uid (a wipe removes both; a
// plain cargo then makes them again with its umask: the slow path widens
// them).
func (r Registry) warmShared(home string) bool {
	for _, n := range cargoLockNames {
		if cur, err := os.Readlink(filepath.Join(home, n[0])); err != nil || cur != filepath.Join(r.Root, n[1]) {
			return false
		}
	}
	var st unix.Stat_t
	return r.lstatRaw(r.DownloadLock(), &st) == nil && st.Mode&0o666 == 0o666
}

// linkLock points link at target (made and judged by the caller). A plain
// file in the way is replaced only while no cargo of this home holds it:
// such a cargo would not see the new file.
func linkLock(link, target string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.Mode().IsRegular():
		l, err := lockfile.Try(link, lockfile.Exclusive)
		if err != nil {
			return fmt.Errorf("%s is in use; cargo's lock will be shared from the next run on: %w", link, err)
		}
		defer l.Release()
	case fi.Mode()&fs.ModeSymlink != 0:
		// Pointing elsewhere (an earlier version, another registry path).
	default:
		return fmt.Errorf("%s is not a file", link)
	}
	return replaceWith(link, func(tmp string) error { return os.Symlink(target, tmp) })
}

// replaceWith makes a new entry with mk beside p and renames it over p, so
// that p always names either the old entry or the new one.
func replaceWith(p string, mk func(tmp string) error) error {
	tmp := p + ".cargo-shim-" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	if err := mk(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ensureLockTargets makes the registry's lock files (beneath the registry's
// descriptor, refusing what is not a regular file).
func (r Registry) ensureLockTargets() error {
	for _, n := range cargoLockNames {
		if err := ensureLockTarget(filepath.Join(r.Root, n[1])); err != nil {
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

// ErrForeignLink is returned by RestorePlain for a link the shim did not make.
var ErrForeignLink = errors.New("not a link cargo-shim made; left as it is")

// IsShimLockLink reports whether target is what the shim points a home's
// cargo lock file at, in this version or an earlier one.
func IsShimLockLink(target string) bool {
	base := filepath.Base(target)
	for _, n := range cargoLockNames {
		if base == n[1] {
			return true
		}
		if base == n[0] && strings.HasSuffix(filepath.Dir(target), string(filepath.Separator)+oldCargoLockDir) {
			return true
		}
	}
	return false
}

// RestorePlain turns one of home's cargo lock files back into a plain empty
// file when it is a link the shim made (what cargo itself would create).
// Anything else is left alone (strict: a foreign link is ErrForeignLink).
// The file the link names is locked exclusively while the link is replaced,
// so no cargo of this home is inside its lock meanwhile; busy is
// lockfile.ErrBusy.
func RestorePlain(link string) error { return restorePlain(link, true) }

func restorePlain(link string, strict bool) error {
	target, err := os.Readlink(link)
	if err != nil {
		return nil // a plain file, a directory in the way, or nothing: cargo's own business
	}
	if !IsShimLockLink(target) {
		if strict {
			return fmt.Errorf("%s -> %s: %w", link, target, ErrForeignLink)
		}
		return nil
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(link), target)
	}
	if fi, err := os.Stat(target); err == nil && fi.Mode().IsRegular() {
		l, err := lockfile.Try(target, lockfile.Exclusive)
		if err != nil {
			return fmt.Errorf("%s: %w", link, err)
		}
		defer l.Release()
	}
	return replaceWith(link, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	})
}

// CargoLockFiles lists the home files RestorePlain takes.
func CargoLockFiles(home string) []string {
	return []string{filepath.Join(home, cargoLockNames[0][0]), filepath.Join(home, cargoLockNames[1][0])}
}

// Quiesce waits until no cargo on the registry is downloading or unpacking
// (cargo holds the shared download lock exclusively while it does), and
// holds that lock shared while fn runs: a half-written .crate or a
// marker-less extraction seen under it is damage, not work in progress.
// Cargo never waits for a per-crate lock, so waiting here while holding one
// cannot deadlock.
//
// On NFS cargo takes no lock at all, so the only download in flight that a
// lock can show is the shim's own `cargo fetch` of cold crates (shim's
// fetchCold), made under the registry's fetch lock held exclusively: there
// the fetch lock is held shared too.
func (r Registry) Quiesce(ctx context.Context, waiting func(), fn func()) error {
	if !lockfile.IsNFS(r.Root) {
		return r.quiesce(ctx, waiting, fn)
	}
	l, err := lockfile.Acquire(ctx, r.FetchLock(), lockfile.Shared, lockfile.Options{Waiting: func(string) {
		if waiting != nil {
			waiting()
		}
	}})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out waiting for another runner's fetch (lock %s)", r.FetchLock())
	}
	if err != nil {
		return err
	}
	defer l.Release()
	return r.quiesce(ctx, waiting, fn)
}

func (r Registry) quiesce(ctx context.Context, waiting func(), fn func()) error {
	if r.CargoLock != "" {
		return quiesceHome(ctx, r.CargoLock, waiting, fn)
	}
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

// quiesceHome is Quiesce on a home's own cargo lock file, which stays as
// cargo made it: opened without creating it or widening its mode. A home
// without one has had no cargo run in it yet.
func quiesceHome(ctx context.Context, p string, waiting func(), fn func()) error {
	// O_NONBLOCK: a FIFO there must not hang the run in open(2). Whatever
	// it is (a directory in the way too), a flock on it is harmless: the
	// home is its user's, and cargo meets the same object.
	l := flock.New(p, flock.SetFlag(os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK))
	ok, err := l.TryRLock()
	if err == nil && !ok {
		if waiting != nil {
			waiting()
		}
		ok, err = l.TryRLockContext(ctx, 20*time.Millisecond)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timed out waiting for the package cache lock %s", p)
	case err != nil:
		return err
	case ok:
		defer l.Unlock()
	}
	fn()
	return nil
}
