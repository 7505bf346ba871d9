package safefs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Rename moves oldRel below d to newRel below to (which may be d),
// replacing a file there as rename(2) does. Neither side is followed.
func (d *Dir) Rename(oldRel string, to *Dir, newRel string) error {
	return d.rename2(oldRel, to, newRel, 0, "rename")
}

// RenameNoReplace is Rename that fails (EEXIST) rather than replace newRel.
func (d *Dir) RenameNoReplace(oldRel string, to *Dir, newRel string) error {
	return d.rename2(oldRel, to, newRel, unix.RENAME_NOREPLACE, "rename")
}

// Exchange swaps oldRel and newRel atomically (renameat2 RENAME_EXCHANGE):
// at no moment is either name missing.
func (d *Dir) Exchange(oldRel string, to *Dir, newRel string) error {
	return d.rename2(oldRel, to, newRel, unix.RENAME_EXCHANGE, "exchange")
}

func (d *Dir) rename2(oldRel string, to *Dir, newRel string, flags uint, op string) error {
	opfd, oname, err := d.parent(oldRel)
	if err != nil {
		return d.pathErr(op, oldRel, err)
	}
	defer unix.Close(opfd)
	npfd, nname, err := to.parent(newRel)
	if err != nil {
		return to.pathErr(op, newRel, err)
	}
	defer unix.Close(npfd)
	if flags == 0 {
		err = unix.Renameat(opfd, oname, npfd, nname)
	} else {
		err = unix.Renameat2(opfd, oname, npfd, nname, flags)
	}
	if err != nil {
		return fmt.Errorf("%s %s to %s: %w", op, d.Join(oldRel), to.Join(newRel), err)
	}
	return nil
}

// Remove removes the file, symlink or empty directory rel (the link itself,
// never what it points to).
func (d *Dir) Remove(rel string) error {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return d.pathErr("remove", rel, err)
	}
	defer unix.Close(pfd)
	if err := unlinkAny(pfd, name); err != nil {
		return d.pathErr("remove", rel, err)
	}
	return nil
}

// Symlink creates the symlink rel pointing at target (the shim creates links
// below the registry; it never follows one).
func (d *Dir) Symlink(target, rel string) error {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return d.pathErr("symlink", rel, err)
	}
	defer unix.Close(pfd)
	if err := unix.Symlinkat(target, pfd, name); err != nil {
		return d.pathErr("symlink", rel, err)
	}
	return nil
}

// Readlink reads the symlink rel.
func (d *Dir) Readlink(rel string) (string, error) {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return "", d.pathErr("readlink", rel, err)
	}
	defer unix.Close(pfd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(pfd, name, buf)
	if err != nil {
		return "", d.pathErr("readlink", rel, err)
	}
	return string(buf[:n]), nil
}

// unlinkAny removes a file, link or empty directory name in the directory
// pfd. EISDIR (or POSIX's EPERM) from unlink means a directory; the error of
// the call that matched the file's kind is the one returned.
func unlinkAny(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		if derr := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); !errors.Is(derr, unix.ENOTDIR) {
			return derr
		}
	}
	return err
}
