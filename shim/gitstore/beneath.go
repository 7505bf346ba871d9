package gitstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
	"golang.org/x/sys/unix"
)

// Another uid may own any directory below git/ (checkouts/<ident> above
// all) and swap a symlink in for it at any moment. So everything this
// package writes, renames or removes there is done relative to descriptors
// held from git/ down, resolved beneath with no symlink followed, never by
// path.

// root opens git/ itself: its own path is the admin's (it may go through
// symlinks); nothing below it is followed.
func (g Store) root() (*safefs.Dir, error) { return safefs.OpenRoot(g.Root) }

// rel is p's path below git/.
func (g Store) rel(p string) (string, error) {
	r, err := filepath.Rel(g.Root, p)
	if err != nil || r == "." || strings.HasPrefix(r, "../") || r == ".." {
		return "", fmt.Errorf("%s is not below %s", p, g.Root)
	}
	return r, nil
}

// errMoved: what was found at a name was swapped for something else before
// it could be moved.
var errMoved = errors.New("replaced while being moved (another uid swapped it); left")

// toTrash moves rel (below git/) into the trash and removes it there. The
// directory holding rel is held open, rel's inode noted there, and the
// rename made between held descriptors; what lands in the trash is checked
// to be that inode (else it is moved back and left) and is removed beneath
// the trash's descriptor, so nothing outside git/ is ever reached.
func (g Store) toTrash(rel string) error {
	root, err := g.root()
	if err != nil {
		return err
	}
	defer root.Close()
	trash, err := root.MkdirAll(".cargo-shim/trash", safefs.Shared)
	if err != nil {
		return err
	}
	defer trash.Close()
	parent, err := root.OpenDir(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer parent.Close()
	base := filepath.Base(rel)
	var found unix.Stat_t
	if err := parent.LstatRaw(base, &found); err != nil {
		return err
	}
	if found.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s: %w", parent.Join(base), safefs.ErrNotDir)
	}
	name := fmt.Sprintf("%s.%s.%d.%d", filepath.Base(filepath.Dir(rel)), base, time.Now().UnixNano(), os.Getpid())
	if err := renameAside(parent, base, trash, name); err != nil {
		return err
	}
	var moved unix.Stat_t
	if err := trash.LstatRaw(name, &moved); err != nil {
		return err
	}
	if moved.Dev != found.Dev || moved.Ino != found.Ino {
		_ = renameAside(trash, name, parent, base)
		return fmt.Errorf("%s: %w", parent.Join(base), errMoved)
	}
	return trash.RemoveAll(name)
}

// renameAside renames from/old to to/name, a name expected free (fresh in
// the trash, just vacated, or a checkout or db to be put in place), never
// over anything (RENAME_NOREPLACE). A filesystem without renameat2's flags
// (GlusterFS's FUSE client) gets a plain rename, which for a directory
// replaces at most an empty directory, and fails on anything else.
func renameAside(from *safefs.Dir, old string, to *safefs.Dir, name string) error {
	err := from.RenameNoReplace(old, to, name)
	if noFlags(err) {
		return from.Rename(old, to, name)
	}
	return err
}

// stageDir makes a fresh directory of this uid's, mode 0700, directly in
// git/, for the git CLI to write a new checkout into. git is given a path,
// so every directory on it must be one no other uid can rename or replace
// an entry of: git/ must be this uid's or root's and not writable by
// others without the sticky bit (then nobody but its owner renames the
// stage), and the stage itself is made here (O_EXCL) and open to nobody
// else. Otherwise nothing is rebuilt: the checkout is left to cargo.
func (g Store) stageDir(root *safefs.Dir) (*safefs.Dir, string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(root.Fd(), &st); err != nil {
		return nil, "", err
	}
	if st.Uid != 0 && int(st.Uid) != safefs.Euid() || st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return nil, "", fmt.Errorf("%s may be written by other uids (no sticky bit, or not this uid's): no checkout is built there", g.Root)
	}
	name := fmt.Sprintf(".cargo-shim-tmp-%d.%d", time.Now().UnixNano(), os.Getpid())
	d, err := root.Mkdir(name, 0o700)
	if err != nil {
		return nil, "", err
	}
	return d, name, nil
}
