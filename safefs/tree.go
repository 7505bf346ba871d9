package safefs

import (
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// Tree lstats many paths below one directory for about one syscall each: a
// warm run stamps every directory of hundreds of extractions, and resolving
// each path beneath the registry afresh (openat2 of its parent, fstatat,
// close) cost three. The tree's root is opened once by name, and each
// directory on the way to a deeper path once, relative to its own parent;
// every lookup is of a single component with O_NOFOLLOW or
// AT_SYMLINK_NOFOLLOW, so no symlink is followed anywhere below d, as with
// every other Dir method. The directories stay open until Close: a Tree is
// for one extraction's stamps, used by one goroutine.
type Tree struct {
	root int
	in   *Dir // for messages: the tree is name in it
	name string
	n    int        // directories open below the root: dirs[:n], then more
	dirs [6]treeDir // the common case, without an allocation
	more []treeDir
}

type treeDir struct {
	rel string
	fd  int
}

// OpenTree opens name, one component directly below d, into t (a Tree the
// caller keeps, on its stack in a hot loop); Close releases it.
func (d *Dir) OpenTree(t *Tree, name string) error {
	*t = Tree{root: -1, in: d, name: name}
	if !component(name) {
		return d.pathErr("open", name, fs.ErrInvalid)
	}
	fd, err := openPathDir(d.fd, name)
	if err != nil {
		return d.pathErr("open", name, err)
	}
	t.root = fd
	return nil
}

// openPathDir opens the directory name in dir as an O_PATH descriptor. A
// symlink at name is not followed: O_NOFOLLOW with O_PATH would open the
// link itself, and O_DIRECTORY then refuses it (ENOTDIR).
func openPathDir(dir int, name string) (int, error) {
	return openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// component: a name that looks up one entry of its directory.
func component(name string) bool {
	return name != "" && name != "." && name != ".." && strings.IndexByte(name, '/') < 0 && strings.IndexByte(name, 0) < 0
}

// Lstat describes rel (slash-separated, relative to the tree's root; "."
// is the root itself) without following a symlink at any component.
func (t *Tree) Lstat(rel string, st *unix.Stat_t) error {
	if rel == "." {
		return t.err("fstat", rel, unix.Fstat(t.root, st))
	}
	dir, name := t.root, rel
	if k := strings.LastIndexByte(rel, '/'); k >= 0 {
		var err error
		if dir, err = t.dir(rel[:k]); err != nil {
			return t.err("lstat", rel, err)
		}
		name = rel[k+1:]
	}
	if !component(name) {
		return t.err("lstat", rel, fs.ErrInvalid)
	}
	return t.err("lstat", rel, unix.Fstatat(dir, name, st, unix.AT_SYMLINK_NOFOLLOW))
}

// dir is the descriptor of the directory rel below the root, opened (and
// its parents) on first use.
func (t *Tree) dir(rel string) (int, error) {
	for k := 0; k < t.n; k++ {
		if t.dirs[k].rel == rel {
			return t.dirs[k].fd, nil
		}
	}
	for _, d := range t.more {
		if d.rel == rel {
			return d.fd, nil
		}
	}
	parent, name := t.root, rel
	if k := strings.LastIndexByte(rel, '/'); k >= 0 {
		var err error
		if parent, err = t.dir(rel[:k]); err != nil {
			return -1, err
		}
		name = rel[k+1:]
	}
	if !component(name) {
		return -1, fs.ErrInvalid
	}
	fd, err := openPathDir(parent, name)
	if err != nil {
		return -1, err
	}
	if t.n < len(t.dirs) {
		t.dirs[t.n] = treeDir{rel: rel, fd: fd}
		t.n++
	} else {
		t.more = append(t.more, treeDir{rel: rel, fd: fd})
	}
	return fd, nil
}

func (t *Tree) err(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	return t.in.pathErr(op, t.name+"/"+rel, err)
}

// Close releases the root and every directory opened below it.
func (t *Tree) Close() {
	for k := 0; k < t.n; k++ {
		unix.Close(t.dirs[k].fd)
	}
	for _, d := range t.more {
		unix.Close(d.fd)
	}
	t.n, t.more = 0, nil
	if t.root >= 0 {
		unix.Close(t.root)
		t.root = -1
	}
}
