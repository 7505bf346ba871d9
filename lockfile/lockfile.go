package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
	"golang.org/x/sys/unix"
)

// Mode is how a lock is held.
type Mode int

const (
	// Shared: a build uses the crate. Any number of holders.
	Shared Mode = iota
	// Exclusive: the crate is being repaired or removed.
	Exclusive
)

func (m Mode) String() string {
	if m == Exclusive {
		return "exclusive"
	}
	return "shared"
}

// ErrBusy is returned by Try when another process holds a conflicting lock.
var ErrBusy = errors.New("lock is held by another process")

// IsBusy reports whether err says the lock was held elsewhere.
func IsBusy(err error) bool { return errors.Is(err, ErrBusy) }

// Lock is one held lock: a raw descriptor (see takeFD), whether taken
// alone or in a set.
type Lock struct {
	fd   int
	path string
	mode Mode
	// readOnly: this uid could not open the file for writing (see
	// openLockFile); an exclusive lock may then be refused (NFSv4).
	readOnly bool
	// mtime (ns) when it was opened: Touch needs no second fstat.
	mtime int64
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Mode is how it is held.
func (l *Lock) Mode() Mode { return l.mode }

// Release drops the lock and closes its descriptor.
func (l *Lock) Release() error {
	switch {
	case l == nil:
		return nil
	case l.fd > 0:
		err := unix.Close(l.fd) // closing the only descriptor releases the flock
		l.fd = -1
		return err
	}
	return nil
}

// Chtimes sets the locked file's times through the held descriptor (the
// path may name another file by now); "now" when explicit times are refused
// (another uid's file: they need ownership, now needs write access only).
func (l *Lock) Chtimes(t time.Time) error {
	fd := l.fd
	err := safefs.Futimens(fd, t, t)
	if err != nil && time.Since(t) < time.Minute {
		err = safefs.Futimens(fd, time.Time{}, time.Time{})
	}
	return err
}

// Stat describes the locked file (fstat of the held descriptor).
func (l *Lock) Stat() (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(l.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: l.path, Err: err}
	}
	return statInfo{name: filepath.Base(l.path), st: st}, nil
}

// statInfo is an fs.FileInfo over a raw fstat.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s statInfo) Name() string       { return s.name }
func (s statInfo) Size() int64        { return s.st.Size }
func (s statInfo) Mode() fs.FileMode  { return fs.FileMode(s.st.Mode & 0o777) }
func (s statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s statInfo) IsDir() bool        { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s statInfo) Sys() any           { return &s.st }

// Options tune a blocking acquisition.
type Options struct {
	// Waiting is called once when the lock could not be taken at once and the
	// caller has waited Patience already (cargo's "Blocking waiting for ...").
	Waiting func(path string)
	// Patience before Waiting is called; default 1s.
	Patience time.Duration
}

// Try takes the lock without waiting; ErrBusy when it is held elsewhere.
func Try(path string, mode Mode) (*Lock, error) {
	return acquire(context.Background(), path, mode, false, Options{})
}

// Acquire takes the lock, waiting until ctx is done. On a cancelled or
// expired ctx the error wraps ctx.Err().
func Acquire(ctx context.Context, path string, mode Mode, opt Options) (*Lock, error) {
	return acquire(ctx, path, mode, true, opt)
}

func acquire(ctx context.Context, path string, mode Mode, wait bool, opt Options) (*Lock, error) {
	return inLockDirs(path, func(dirs *lockDirs) (*Lock, error) { return acquireIn(ctx, path, mode, wait, opt, dirs) })
}

func acquireIn(ctx context.Context, path string, mode Mode, wait bool, opt Options, dirs *lockDirs) (*Lock, error) {
	if opt.Patience == 0 {
		opt.Patience = time.Second
	}
	start := time.Now()
	warned := false
	delay := time.Millisecond
	for {
		l, err := lockAt(path, mode, dirs)
		if err == nil {
			return l, nil
		}
		if !IsBusy(err) || !wait {
			return nil, err
		}
		if !warned && opt.Waiting != nil && time.Since(start) >= opt.Patience {
			warned = true
			opt.Waiting(path)
		}
		// flock(2) has no timeout and a blocked flock cannot be interrupted
		// portably from Go, so waiting is a poll with capped backoff.
		select {
		case <-ctx.Done():
			return nil, &fs.PathError{Op: "lock", Path: path, Err: ctx.Err()}
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// MkdirShared creates dir (and parents) so that every runner uid can create
// files in it, whatever the umask: lock files, state records, the trash.
func MkdirShared(dir string) error { return mkdirShared(dir) }

func mkdirShared(dir string) error {
	if below, err := mkdirBeneath(dir); below {
		return err
	}
	// Stat, not Lstat: the registry itself may be a symlink or a bind mount.
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := mkdirShared(filepath.Dir(dir)); err != nil {
		return err
	}
	// On a filesystem shared by several hosts (GlusterFS, NFS), the parent
	// another client has just created can still be missing here: mkdir then
	// fails with ENOENT although the parent's mkdir said EEXIST. Look the
	// parent up again and retry, briefly; a lock taken in a directory we
	// could not make would not be the one other hosts take.
	delay := time.Millisecond
	for attempt := 0; ; attempt++ {
		err := os.Mkdir(dir, 0o777)
		if err == nil {
			widenDir(dir)
		}
		if err == nil || errors.Is(err, fs.ErrExist) {
			fi, serr := os.Stat(dir)
			if serr == nil && fi.IsDir() {
				return nil
			}
			if serr == nil {
				return fmt.Errorf("%s is not a directory", dir)
			}
			err = serr
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == mkdirRetries {
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
		_, _ = os.Stat(filepath.Dir(dir)) // a fresh lookup of the parent
	}
}

// widenDir makes a directory we just created 0777, keeping a setgid bit
// inherited from the parent (a group-shared registry: it gives what is
// created inside the registry's group). Through a descriptor opened without
// following a link and only if we own it: a Chmod(path) here was raced into
// chmodding another directory.
func widenDir(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && int(st.Uid) == os.Geteuid() {
		_ = unix.Fchmod(fd, 0o777|st.Mode&unix.S_ISGID)
	}
}

// mkdirRetries bounds mkdirShared's retries of a directory whose parent
// another host has just made: about two seconds in all.
const mkdirRetries = 25

// Set is a group of locks taken in one order.
type Set struct {
	locks []*Lock
}

// SortPaths sorts and de-duplicates lock paths: the one global order every
// process takes locks in, so that two sets can never wait on each other.
func SortPaths(paths []string) []string {
	out := append([]string(nil), paths...)
	sort.Strings(out)
	j := 0
	for i, p := range out {
		if i == 0 || p != out[j-1] {
			out[j] = p
			j++
		}
	}
	return out[:j]
}

// AcquireSet takes every path in mode. The locks that are free are taken
// at once, several in parallel (a warm run pins hundreds); the busy ones are
// then waited for one at a time in sorted order. Waiting while holding other
// locks is safe only for shared sets: an exclusive holder never waits for a
// per-crate lock while it holds one, so no cycle can form. Exclusive sets
// must therefore be taken one lock at a time by their callers. On error the
// locks already taken are released and none is held.
func AcquireSet(ctx context.Context, paths []string, mode Mode, opt Options) (*Set, error) {
	sorted := SortPaths(paths)
	if len(sorted) == 0 {
		return &Set{}, nil
	}
	return inLockDirs(sorted[0], func(dirs *lockDirs) (*Set, error) { return acquireSet(ctx, sorted, mode, opt, dirs) })
}

func acquireSet(ctx context.Context, sorted []string, mode Mode, opt Options, dirs *lockDirs) (*Set, error) {
	got := make([]*Lock, len(sorted))
	errs := make([]error, len(sorted))
	workers := 0
	if len(sorted) > 0 {
		workers = Workers(filepath.Dir(sorted[0]))
	}
	Parallel(workers, len(sorted), func(n int) { got[n], errs[n] = lockAt(sorted[n], mode, dirs) })
	s := &Set{}
	for n, p := range sorted {
		if errs[n] != nil && !IsBusy(errs[n]) {
			s.locks = nonNil(got)
			s.Release()
			return nil, errs[n]
		}
		if got[n] == nil {
			l, err := acquireIn(ctx, p, mode, true, opt, dirs)
			if err != nil {
				s.locks = nonNil(got)
				s.Release()
				return nil, err
			}
			got[n] = l
		}
	}
	s.locks = got
	return s, nil
}

func nonNil(ls []*Lock) []*Lock {
	var out []*Lock
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// Locks lists the held locks in acquisition order.
func (s *Set) Locks() []*Lock { return s.locks }

// Release drops every lock of the set.
func (s *Set) Release() error {
	var first error
	for i := len(s.locks) - 1; i >= 0; i-- {
		if err := s.locks[i].Release(); err != nil && first == nil {
			first = err
		}
	}
	s.locks = nil
	return first
}

// Touch sets the mtime of each lock file to now when it was older than
// minAge when it was locked: the lock file's mtime is a crate's "last used"
// for gc, and throttling keeps a warm run from writing 400 inodes every time
// (or stat-ing them again: the mtime is the one seen when it was opened).
func (s *Set) Touch(now time.Time, minAge time.Duration) {
	for _, l := range s.locks {
		if now.Sub(time.Unix(0, l.mtime)) < minAge {
			continue
		}
		_ = l.Chtimes(now)
	}
}

// Downgrade turns a held exclusive lock into a shared one on the same
// descriptor. Linux converts a flock in one step under the inode's lock
// (and FUSE passes it on as one lock request of the same owner): no other
// process can take the lock exclusively in between, unlike an upgrade,
// which drops the lock and waits. Callers still look at what the lock
// guards afterwards: a filesystem may do otherwise.
func (l *Lock) Downgrade() error {
	if l.mode != Exclusive {
		return nil
	}
	if err := unix.Flock(l.fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return &fs.PathError{Op: "downgrade", Path: l.path, Err: err}
	}
	l.mode = Shared
	return nil
}
