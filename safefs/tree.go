package safefs

import (
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// Tree lstats many paths below one directory for about one syscall each: a
// warm run stamps every directory of hundreds of extractions, and resolving
// each path beneath the registry afresh (openat2 of its parent, fstatat,
// close) cost three. No symlink that another uid could have planted is
// followed anywhere below d, as with every other Dir method, by one of two
// routes:
//   - Through directories the Tree has seen (looked up without following) to
//     be sealed, writable by none but the running uid and root, each with
//     every directory above it sealed too, a path is resolved by the kernel
//     in one fstatat(AT_SYMLINK_NOFOLLOW): nobody else can swap an entry of
//     such a directory for a link between the look and the lookup, and the
//     running uid and root are the writers the threat model believes. When d
//     itself was seen sealed (SeeSealed), the tree's root is one of those
//     directories and is never opened at all.
//   - Anywhere else each directory on the way is opened once, relative to its
//     own parent, with O_NOFOLLOW, and the last component is looked up in it
//     with AT_SYMLINK_NOFOLLOW.
//
// The directories stay open until Close: a Tree is for one extraction's
// stamps, used by one goroutine.
type Tree struct {
	root   int  // the root's descriptor, once a walk needed it (else -1)
	in     *Dir // the tree is name in it
	name   string
	prefix string     // name + "/", to resolve from in when it is sealed
	n      int        // directories open below the root: dirs[:n], then more
	dirs   [6]treeDir // the common case, without an allocation
	more   []treeDir
	// rootSealed: the root was seen sealed. sealed: directories below it
	// seen sealed, with every directory above them sealed.
	rootSealed bool
	ns         int
	sealed     [8]string
	moreSealed []string
}

type treeDir struct {
	rel string
	fd  int
}

// SeeSealed fstats d and remembers whether only the running uid and root can
// write it, which lets a Tree in it resolve its root by name (see Tree).
// Call it before d is shared between goroutines.
func (d *Dir) SeeSealed() bool {
	var st unix.Stat_t
	d.sealed = unix.Fstat(d.fd, &st) == nil && sealedDir(&st)
	return d.sealed
}

// OpenTree sets t (a Tree the caller keeps, on its stack in a hot loop) to
// the directory name, one component directly below d; Close releases it.
// In a sealed d nothing is opened yet: a missing or replaced root shows in
// t's first Lstat.
func (d *Dir) OpenTree(t *Tree, name string) error {
	*t = Tree{root: -1, in: d, name: name}
	if !component(name) {
		return d.pathErr("open", name, fs.ErrInvalid)
	}
	if d.sealed {
		t.prefix = name + "/"
		return nil
	}
	_, err := t.rootFD()
	return err
}

// rootFD is the root's descriptor, opened (without following) on first use.
func (t *Tree) rootFD() (int, error) {
	if t.root < 0 {
		fd, err := openPathDir(t.in.fd, t.name)
		if err != nil {
			return -1, t.in.pathErr("open", t.name, err)
		}
		t.root = fd
	}
	return t.root, nil
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
// is the root itself) without following a symlink another uid could have
// planted at any component (see Tree).
func (t *Tree) Lstat(rel string, st *unix.Stat_t) error {
	if rel == "." {
		var err error
		if t.root >= 0 {
			err = unix.Fstat(t.root, st)
		} else {
			err = unix.Fstatat(t.in.fd, t.name, st, unix.AT_SYMLINK_NOFOLLOW)
		}
		t.rootSealed = err == nil && sealedDir(st) && (t.root >= 0 || t.in.sealed)
		return t.err("lstat", rel, err)
	}
	parent, name := "", rel
	if k := strings.LastIndexByte(rel, '/'); k >= 0 {
		parent, name = rel[:k], rel[k+1:]
	}
	if !component(name) {
		return t.err("lstat", rel, fs.ErrInvalid)
	}
	var err error
	switch {
	case !t.isSealed(parent):
		err = t.walkLstat(parent, name, st)
	case t.root >= 0:
		// Every component on the way was seen, named and sealed, so rel
		// resolves through those very directories; ".." and empty names
		// never got into the set.
		err = unix.Fstatat(t.root, rel, st, unix.AT_SYMLINK_NOFOLLOW)
	default:
		err = unix.Fstatat(t.in.fd, t.prefix+rel, st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err == nil && sealedDir(st) && t.isSealed(parent) {
		t.addSealed(rel)
	}
	return t.err("lstat", rel, err)
}

// walkLstat looks name up in the directory parent ("" is the root), each
// directory on the way opened without following.
func (t *Tree) walkLstat(parent, name string, st *unix.Stat_t) error {
	dir, err := t.rootFD()
	if err == nil && parent != "" {
		dir, err = t.dir(parent)
	}
	if err != nil {
		return err
	}
	return unix.Fstatat(dir, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// sealedDir: st is a directory only the running uid and root can write.
// An ACL granting write to anyone else shows in the group bits (its mask).
func sealedDir(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Mode&0o022 == 0 && (st.Uid == 0 || int(st.Uid) == Euid())
}

// isSealed: rel ("" is the root) was seen sealed, with all above it.
func (t *Tree) isSealed(rel string) bool {
	if rel == "" {
		return t.rootSealed
	}
	for k := 0; k < t.ns; k++ {
		if t.sealed[k] == rel {
			return true
		}
	}
	for _, c := range t.moreSealed {
		if c == rel {
			return true
		}
	}
	return false
}

func (t *Tree) addSealed(rel string) {
	if t.isSealed(rel) {
		return
	}
	if t.ns < len(t.sealed) {
		t.sealed[t.ns] = rel
		t.ns++
	} else {
		t.moreSealed = append(t.moreSealed, rel)
	}
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
	if pe, ok := err.(*fs.PathError); ok {
		return pe // rootFD's, naming the root
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
	t.rootSealed, t.ns, t.moreSealed = false, 0, nil
	if t.root >= 0 {
		unix.Close(t.root)
		t.root = -1
	}
}
