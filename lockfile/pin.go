package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// tryFD takes a lock on a raw descriptor: every lock (Try, Acquire, and
// AcquireSet's first pass). A warm run pins hundreds of crates, and an
// *os.File costs ten syscalls per lock here (open, then Go's poller
// registration: fstat, four fcntl, a failing epoll_ctl), against four for
// open + flock + fstat + lstat: measured, 400 pins took 21 ms through
// gofrs/flock. A lock file is opened read-only, resolved beneath a declared
// registry without following any link (beneath.go; O_NOFOLLOW on the file
// elsewhere), never inherited (O_CLOEXEC), checked after locking to still be
// the file at its path, and made world-lockable whatever the umask.
func tryFD(path string, mode Mode) (*Lock, error) {
	how := unix.LOCK_SH | unix.LOCK_NB
	if mode == Exclusive {
		how = unix.LOCK_EX | unix.LOCK_NB
	}
	for attempt := 0; ; attempt++ {
		fd, err := openLockFile(path)
		if err != nil {
			if errors.Is(err, unix.ELOOP) {
				return nil, &fs.PathError{Op: "lock", Path: path, Err: fmt.Errorf("lock file is a symlink, refusing to follow it: %w", err)}
			}
			return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		if err := unix.Flock(fd, how); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &fs.PathError{Op: "lock", Path: path, Err: ErrBusy}
			}
			return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		var held unix.Stat_t
		if err := unix.Fstat(fd, &held); err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		if !sameFile(path, &held) {
			unix.Close(fd)
			if attempt < 10 {
				continue
			}
			return nil, &fs.PathError{Op: "lock", Path: path, Err: errors.New("lock file keeps being replaced")}
		}
		if held.Mode&filePerm != filePerm && int(held.Uid) == syscall.Geteuid() {
			_ = unix.Fchmod(fd, filePerm)
		}
		return &Lock{fd: fd, path: path, mode: mode}, nil
	}
}

func dirOf(path string) string {
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return "."
}
