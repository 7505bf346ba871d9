package safefs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is the error of an open that found something other than a
// regular file (a FIFO, a socket, a device, a directory) where the shim
// expects one: another uid may have planted it.
var ErrNotRegular = errors.New("not a regular file (another uid may have planted it)")

// The one rule for every open of a file the shim does not own alone: the
// open itself carries O_NONBLOCK (a FIFO opened without it blocks in open(2)
// until a writer comes, before any timeout can apply; a FIFO opened with it
// returns at once), then fstat refuses anything that is not a regular file,
// and only then is the descriptor made blocking again.
const nonblockRead = unix.O_RDONLY | unix.O_NONBLOCK

// Open opens the regular file rel for reading, never blocking in the open.
func (d *Dir) Open(rel string) (*os.File, error) {
	fd, err := d.open(rel, nonblockRead, 0)
	if err != nil {
		return nil, d.pathErr("open", rel, err)
	}
	if err := regular(fd, d.Join(rel), true); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.Join(rel)), nil
}

// regular keeps fd only if it is a regular file, and makes it blocking
// again (for reads; a flock target stays as it is: flock never reads, and a
// warm run pins hundreds); otherwise it closes fd and says why, naming name.
func regular(fd int, name string, forRead bool) error {
	var st unix.Stat_t
	if op, err := checkRegular(fd, forRead, &st); err != nil {
		return &fs.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

// checkRegular is regular leaving the fstat in st, and the failed
// operation unwrapped: the caller names the file only when it failed (a
// warm run opens hundreds).
func checkRegular(fd int, forRead bool, st *unix.Stat_t) (op string, err error) {
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return "fstat", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return "open", ErrNotRegular
	}
	if !forRead {
		return "", nil
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return "fcntl", err
	}
	return "", nil
}

// OpenLockPath is OpenLock for a path outside every registry (a home's own
// cargo lock, a test's directory): the same open, by path, with O_NOFOLLOW
// on its last component only. st, when not nil, receives the file's
// status (the fstat that refused anything but a regular file).
func OpenLockPath(path string, flags int, perm fs.FileMode, st *unix.Stat_t) (int, error) {
	flags &= unix.O_ACCMODE | unix.O_CREAT
	fd, err := unix.Open(path, flags|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if st == nil {
		st = new(unix.Stat_t)
	}
	if op, err := checkRegular(fd, false, st); err != nil {
		return -1, &fs.PathError{Op: op, Path: path, Err: err}
	}
	return fd, nil
}

// ReadFile reads the regular file rel, refusing one larger than limit bytes
// (limit <= 0: no limit).
func (d *Dir) ReadFile(rel string, limit int64) ([]byte, error) {
	f, err := d.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, &fs.PathError{Op: "read", Path: d.Join(rel), Err: fmt.Errorf("larger than %d bytes", limit)}
	}
	return data, nil
}

// Create creates the file rel, which must not exist (O_EXCL: never opens
// what another uid planted), for writing; perm is set through the descriptor,
// whatever the umask.
func (d *Dir) Create(rel string, perm fs.FileMode) (*os.File, error) {
	fd, err := d.open(rel, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return nil, d.pathErr("create", rel, err)
	}
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		unix.Close(fd)
		return nil, d.pathErr("fchmod", rel, err)
	}
	return os.NewFile(uintptr(fd), d.Join(rel)), nil
}

// OpenLock opens the file rel as a flock target, with flags: the access
// mode (O_RDWR or O_RDONLY) and O_CREAT to create it with perm if missing.
// O_NONBLOCK is always added, so that a FIFO planted at rel cannot block the
// open, and anything but a regular file is refused. st, when not nil,
// receives the file's status (a warm run pins hundreds: the caller needs no
// second fstat).
func (d *Dir) OpenLock(rel string, flags int, perm fs.FileMode, st *unix.Stat_t) (int, error) {
	flags &= unix.O_ACCMODE | unix.O_CREAT
	fd, err := d.open(rel, flags|unix.O_NONBLOCK, uint32(perm.Perm()))
	if err != nil {
		return -1, d.pathErr("open", rel, err)
	}
	if st == nil {
		st = new(unix.Stat_t)
	}
	if op, err := checkRegular(fd, false, st); err != nil {
		return -1, &fs.PathError{Op: op, Path: d.Join(rel), Err: err}
	}
	return fd, nil
}

// WriteFile replaces rel atomically: a fresh temporary file beside it, then a
// rename over it. Readers see the old content or the new, never a part, and
// a file another uid planted at rel is replaced, not written through.
func (d *Dir) WriteFile(rel string, data []byte, perm fs.FileMode) error {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return d.pathErr("write", rel, err)
	}
	defer unix.Close(pfd)
	tmp, fd, err := createTemp(pfd)
	if err != nil {
		return d.pathErr("create", rel, err)
	}
	f := os.NewFile(uintptr(fd), d.Join(rel))
	if err = unix.Fchmod(fd, uint32(perm.Perm())); err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(pfd, tmp, pfd, name)
	}
	if err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return d.pathErr("write", rel, err)
	}
	return nil
}

// createTemp creates a new file named .tmp-<random> in the directory pfd.
func createTemp(pfd int) (string, int, error) {
	for try := 0; ; try++ {
		var b [8]byte
		rand.Read(b[:])
		name := ".tmp-" + hex.EncodeToString(b[:])
		fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST && try < 10 {
			continue
		}
		return name, fd, err
	}
}

// Chmod sets rel's mode through a descriptor of it (fchmod): the object
// changed is the one resolved beneath d, never a symlink's target.
func (d *Dir) Chmod(rel string, mode fs.FileMode) error {
	fd, err := d.open(rel, nonblockRead, 0)
	if err != nil {
		return d.pathErr("chmod", rel, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, unixMode(mode)); err != nil {
		return d.pathErr("fchmod", rel, err)
	}
	return nil
}

// Chtimes sets rel's access and modification times through a descriptor of
// it (futimens). The zero time means "now", which needs only write access;
// an explicit time needs ownership.
func (d *Dir) Chtimes(rel string, atime, mtime time.Time) error {
	fd, err := d.open(rel, nonblockRead, 0)
	if err != nil {
		return d.pathErr("chtimes", rel, err)
	}
	defer unix.Close(fd)
	if err := Futimens(fd, atime, mtime); err != nil {
		return d.pathErr("futimens", rel, err)
	}
	return nil
}

// Futimens sets the times of the open file fd; the zero time means now.
func Futimens(fd int, atime, mtime time.Time) error {
	ts := [2]unix.Timespec{timespec(atime), timespec(mtime)}
	// utimensat with a NULL path is futimens(3): the descriptor's own inode.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// unixMode maps permission, setgid and sticky bits of an fs.FileMode.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// OpenFile opens rel with flag (O_NOFOLLOW and O_CLOEXEC added) and, when
// creating, perm as open(2) takes it: the umask applies, as it does to
// cargo's own extraction. Unless flag has O_EXCL (a new file: never what
// another uid planted), the open follows the one rule: O_NONBLOCK, and
// nothing but a regular file.
func (d *Dir) OpenFile(rel string, flag int, perm fs.FileMode) (*os.File, error) {
	excl := flag&unix.O_EXCL != 0
	if !excl {
		flag |= unix.O_NONBLOCK
	}
	fd, err := d.open(rel, flag, uint32(perm.Perm()))
	if err == unix.ENXIO && !excl {
		// A write-only open of a FIFO with no reader, or of a socket.
		err = ErrNotRegular
	}
	if err != nil {
		return nil, d.pathErr("open", rel, err)
	}
	if !excl {
		if err := regular(fd, d.Join(rel), true); err != nil {
			return nil, err
		}
	}
	return os.NewFile(uintptr(fd), d.Join(rel)), nil
}

// MkdirUmask creates the directory rel with perm as mkdir(2) takes it (the
// umask applies); the error of an existing one is fs.ErrExist.
func (d *Dir) MkdirUmask(rel string, perm fs.FileMode) error {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return d.pathErr("mkdir", rel, err)
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, name, uint32(perm.Perm())); err != nil {
		return d.pathErr("mkdir", rel, err)
	}
	return nil
}
