package groupshare

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// node is one entry of a walk. Directories come with a descriptor opened
// without following symlinks; other entries with their parent's descriptor
// and their name, to be opened relative to it.
type node struct {
	Path   string
	Rel    string // relative to the registry, "." for its root
	Stat   unix.Stat_t
	Fd     int // directories: open; others: -1
	Parent int // the parent directory's descriptor (-1 for the root)
	Name   string
	Err    error // a directory that could not be opened or listed
	opath  bool  // Fd is an O_PATH descriptor
}

func (n *node) isDir() bool { return n.Stat.Mode&unix.S_IFMT == unix.S_IFDIR }
func (n *node) isReg() bool { return n.Stat.Mode&unix.S_IFMT == unix.S_IFREG }

// errStop ends a walk early without an error.
var errStop = errors.New("stop")

// walk visits root (followed if it is a symlink: the registry may be one)
// and everything under it, parents before children. Nothing below root is
// followed: a symlink is visited as itself, and a directory swapped for a
// symlink between listing and opening fails to open (ELOOP) and is visited
// with Err. Entries that vanish meanwhile are skipped.
//
// files, when not nil, says which entries that are not directories to
// visit at all: the others cost no stat (the listing gives their type).
func walk(root string, files func(rel string) bool, visit func(n *node) error) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	n := &node{Path: root, Rel: ".", Fd: fd, Parent: -1}
	if err := unix.Fstat(fd, &n.Stat); err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "fstat", Path: root, Err: err}
	}
	err = walkDir(n, files, visit)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// walkDir visits n (a directory, Fd open) and its children, then closes Fd.
func walkDir(n *node, files func(string) bool, visit func(*node) error) error {
	dir := os.NewFile(uintptr(n.Fd), n.Path) // owns n.Fd from here
	defer dir.Close()
	if err := visit(n); err != nil {
		return err
	}
	ents, err := dir.ReadDir(-1)
	if err != nil {
		return visit(&node{Path: n.Path, Rel: n.Rel, Stat: n.Stat, Fd: -1, Parent: -1, Err: err})
	}
	for _, e := range ents {
		name := e.Name()
		rel := filepath.Join(n.Rel, name)
		if !e.IsDir() && files != nil && !files(rel) {
			continue
		}
		c := &node{Path: filepath.Join(n.Path, name), Rel: rel, Fd: -1, Parent: n.Fd, Name: name}
		if err := unix.Fstatat(n.Fd, name, &c.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // gone meanwhile
		}
		if !c.isDir() {
			if err := visit(c); err != nil {
				return err
			}
			continue
		}
		fd, err := unix.Openat(n.Fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			c.Err = &os.PathError{Op: "open", Path: c.Path, Err: err}
			if err := visit(c); err != nil {
				return err
			}
			continue
		}
		c.Fd = fd
		if err := unix.Fstat(fd, &c.Stat); err != nil {
			unix.Close(fd)
			continue
		}
		if err := walkDir(c, files, visit); err != nil {
			return err
		}
	}
	return nil
}
