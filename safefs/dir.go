package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Dir is a directory held open by descriptor. Every path given to its methods
// is relative to it (slash-separated, no "..") and is resolved beneath it
// without following any symlink, the last component included.
type Dir struct {
	fd   int
	name string // what it was opened as, for messages only
	walk bool   // resolve one component at a time (kernel without openat2)
}

// resolveFlags: beneath the directory, no symlink of any kind.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

var (
	probeOnce sync.Once
	noOpenat2 bool
)

// hasOpenat2 probes the kernel once. ENOSYS is an old kernel; EPERM is a
// seccomp filter (older container runtimes) that predates the syscall.
func hasOpenat2() bool {
	probeOnce.Do(func() {
		fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
		if err == nil {
			unix.Close(fd)
		}
		noOpenat2 = errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)
	})
	return !noOpenat2
}

// OpenRoot opens the registry directory. The path itself may go through
// symlinks; nothing below it will.
func OpenRoot(dir string) (*Dir, error) {
	return openRoot(dir, !hasOpenat2())
}

func openRoot(dir string, walk bool) (*Dir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Dir{fd: fd, name: dir, walk: walk}, nil
}

// Name is the path the directory was opened as (for messages: the directory
// may have been renamed since).
func (d *Dir) Name() string { return d.name }

// Fd is the held descriptor; valid until Close.
func (d *Dir) Fd() int { return d.fd }

// Close releases the descriptor.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Join names rel below d in messages.
func (d *Dir) Join(rel string) string {
	if rel == "" || rel == "." {
		return d.name
	}
	return d.name + "/" + rel
}

func (d *Dir) pathErr(op, rel string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w: a symlink below the registry, not followed", err)
	}
	return &fs.PathError{Op: op, Path: d.Join(rel), Err: err}
}

// split checks rel and returns its components; none for "." or "".
func split(rel string) ([]string, error) {
	if strings.IndexByte(rel, 0) >= 0 || strings.HasPrefix(rel, "/") {
		return nil, fs.ErrInvalid
	}
	c := path.Clean(rel)
	if c == "." {
		return nil, nil
	}
	parts := strings.Split(c, "/")
	for _, p := range parts {
		if p == ".." {
			return nil, fs.ErrInvalid
		}
	}
	return parts, nil
}

// open resolves rel beneath d and opens it with flags (O_CLOEXEC added,
// and O_NOFOLLOW on the walk path). mode is used with O_CREAT only.
func (d *Dir) open(rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if component(rel) {
		// One name in d: O_NOFOLLOW refuses a symlink there, and there is
		// no other component to resolve (a lock file in its held directory).
		return openat(d.fd, rel, flags, mode)
	}
	parts, err := split(rel)
	if err != nil {
		return -1, err
	}
	if len(parts) == 0 {
		return unix.Openat(d.fd, ".", flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW), 0)
	}
	if d.walk {
		return d.openWalk(parts, flags, mode)
	}
	how := &unix.OpenHow{Flags: uint64(flags), Resolve: resolveFlags}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(mode)
	}
	for {
		fd, err := unix.Openat2(d.fd, strings.Join(parts, "/"), how)
		// EAGAIN: a rename elsewhere raced the lookup; the kernel asks to retry.
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

func openat(dir int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openWalk is open without openat2: one openat per component, each refusing
// a symlink (O_NOFOLLOW) and anything but a directory before the last.
func (d *Dir) openWalk(parts []string, flags int, mode uint32) (int, error) {
	cur := d.fd
	for _, p := range parts[:len(parts)-1] {
		next, err := unix.Openat(cur, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if cur != d.fd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	fd, err := unix.Openat(cur, parts[len(parts)-1], flags, mode)
	if cur != d.fd {
		unix.Close(cur)
	}
	return fd, err
}

// parent opens the directory holding rel's last component (O_PATH: usable
// as the dirfd of *at calls) and returns that component.
func (d *Dir) parent(rel string) (int, string, error) {
	parts, err := split(rel)
	if err != nil {
		return -1, "", err
	}
	if len(parts) == 0 {
		return -1, "", fs.ErrInvalid
	}
	fd, err := d.open(strings.Join(parts[:len(parts)-1], "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", err
	}
	return fd, parts[len(parts)-1], nil
}

// OpenDir opens the directory rel below d as a Dir of its own.
func (d *Dir) OpenDir(rel string) (*Dir, error) {
	fd, err := d.open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, d.pathErr("open", rel, err)
	}
	return &Dir{fd: fd, name: d.Join(rel), walk: d.walk}, nil
}
