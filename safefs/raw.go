package safefs

import (
	"errors"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotOwn is returned by OpenOwn for anything but a regular file this uid
// owns with one link.
var ErrNotOwn = errors.New("not a regular file owned by this uid with one link; refused")

// ErrGone is returned by OpenOwn for a file unlinked after it was opened
// (its last name removed): the caller may open the name again.
var ErrGone = errors.New("removed while being opened")

// OpenOwn opens rel beneath d with flag (O_NOFOLLOW, O_NONBLOCK and
// O_CLOEXEC added) as a raw descriptor, takes flock(lock|LOCK_NB) on it
// when lock is not 0, and keeps it only if it is then a regular file this
// uid owns with one link. It is for files a uid appends to in a directory
// every uid can write: a symlink is never followed, a FIFO never blocks the
// open, and a file another uid planted (or hard linked) at the name is
// never written. st, when not nil, receives the file's status. A raw
// descriptor costs no poller registration: the warm path counts its
// syscalls.
func (d *Dir) OpenOwn(rel string, flag int, perm fs.FileMode, lock int, st *unix.Stat_t) (int, error) {
	fd, err := d.open(rel, flag|unix.O_NONBLOCK, uint32(perm.Perm()))
	if err != nil {
		return -1, d.pathErr("open", rel, err)
	}
	if lock != 0 {
		if err := unix.Flock(fd, lock|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			return -1, d.pathErr("flock", rel, err)
		}
	}
	var s unix.Stat_t
	if st == nil {
		st = &s
	}
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return -1, d.pathErr("fstat", rel, err)
	}
	if st.Nlink == 0 && st.Mode&unix.S_IFMT == unix.S_IFREG && int(st.Uid) == Euid() {
		unix.Close(fd)
		return -1, d.pathErr("open", rel, ErrGone)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != Euid() || st.Nlink != 1 {
		unix.Close(fd)
		return -1, d.pathErr("open", rel, ErrNotOwn)
	}
	return fd, nil
}

// Euid is this process's effective uid, asked of the kernel once (the warm
// path counts its syscalls).
var Euid = sync.OnceValue(unix.Geteuid)

// ReplaceForeign puts a fresh empty file of this uid's, mode perm, at rel
// when what is there now is not a regular file this uid owns with one link
// (another uid planted it first): made beside it, then renamed over it, all
// relative to rel's directory resolved beneath d. In a sticky directory only
// root (or the directory's owner) may rename over another uid's file; others
// get the error. foreign is the uid whose file went (-1 when rel was this
// uid's own, or missing: nothing done).
func (d *Dir) ReplaceForeign(rel string, perm fs.FileMode) (foreign int, err error) {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return -1, d.pathErr("replace", rel, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return -1, nil
		}
		return -1, d.pathErr("lstat", rel, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && int(st.Uid) == Euid() && st.Nlink == 1 {
		return -1, nil
	}
	tmp, fd, err := createTemp(pfd)
	if err != nil {
		return -1, d.pathErr("replace", rel, err)
	}
	err = unix.Fchmod(fd, uint32(perm.Perm()))
	unix.Close(fd)
	if err == nil {
		err = unix.Renameat(pfd, tmp, pfd, name)
	}
	if err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return -1, d.pathErr("replace", rel, err)
	}
	return int(st.Uid), nil
}
