package safefs

import (
	"errors"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// Shared is the mode of the registry's shared shim directories: every uid
// may create entries (lock files, records, trash), and the sticky bit keeps
// any uid from renaming or removing what another uid owns there, above all
// the directories the shim itself created.
const Shared = 0o777 | fs.ModeSticky

// Mkdir creates the directory rel (its parent must exist) with mode perm,
// whatever the umask, and returns it open. See mkdirOne for why it cannot
// be raced into changing the mode of anything else.
func (d *Dir) Mkdir(rel string, perm fs.FileMode) (*Dir, error) {
	sub, created, err := d.mkdirOne(rel, perm)
	if err == nil && !created {
		sub.Close()
		return nil, d.pathErr("mkdir", rel, fs.ErrExist)
	}
	return sub, err
}

// MkdirAll makes sure rel is a directory, creating each missing component
// with mode perm (Shared for the shim's directories), and returns it open.
// An existing component that this uid owns and that lacks the sticky bit
// perm asks for gets it (registries from before the bit). Any component
// that is not a real directory (a symlink included) is an error.
func (d *Dir) MkdirAll(rel string, perm fs.FileMode) (*Dir, error) {
	if sub, err := d.OpenDir(rel); err == nil {
		sub.addSticky(perm)
		return sub, nil
	}
	parts, err := split(rel)
	if err != nil {
		return nil, d.pathErr("mkdir", rel, err)
	}
	if len(parts) == 0 {
		return d.OpenDir(".")
	}
	var sub *Dir
	for k := range parts {
		sub.Close()
		var created bool
		sub, created, err = d.mkdirOne(strings.Join(parts[:k+1], "/"), perm)
		if err != nil {
			return nil, err
		}
		if !created {
			sub.addSticky(perm)
		}
	}
	return sub, nil
}

// mkdirOne creates one directory race-free. mkdirat, then open it
// O_DIRECTORY|O_NOFOLLOW beneath d, then fstat: only a directory this uid
// owns is fchmodded, through that descriptor. Another uid that swaps a
// symlink in after the mkdirat makes the open fail; one that swaps in its own
// directory gets it used, not chmodded. A Chmod(path) here was raced into
// making a root-owned directory elsewhere 0777.
func (d *Dir) mkdirOne(rel string, perm fs.FileMode) (*Dir, bool, error) {
	pfd, name, err := d.parent(rel)
	if err != nil {
		return nil, false, d.pathErr("mkdir", rel, err)
	}
	defer unix.Close(pfd)
	created := true
	if err := unix.Mkdirat(pfd, name, unixMode(perm)); errors.Is(err, unix.EEXIST) {
		created = false
	} else if err != nil {
		return nil, false, d.pathErr("mkdir", rel, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, d.pathErr("open", rel, notReal(err))
	}
	sub := &Dir{fd: fd, name: d.Join(rel), walk: d.walk}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		sub.Close()
		return nil, false, d.pathErr("fstat", rel, err)
	}
	if created && int(st.Uid) == unix.Geteuid() {
		// A setgid bit inherited from the parent (a group-shared registry)
		// stays: it gives what is created below the registry's group.
		if err := unix.Fchmod(fd, unixMode(perm)|st.Mode&unix.S_ISGID); err != nil {
			sub.Close()
			return nil, false, d.pathErr("fchmod", rel, err)
		}
	}
	return sub, created, nil
}

// addSticky gives a world-writable directory this uid owns the sticky bit
// when perm has it; anything else is left as its owner made it.
func (d *Dir) addSticky(perm fs.FileMode) {
	var st unix.Stat_t
	if perm&fs.ModeSticky == 0 || unix.Fstat(d.fd, &st) != nil {
		return
	}
	if int(st.Uid) == unix.Geteuid() && st.Mode&0o002 != 0 && st.Mode&unix.S_ISVTX == 0 {
		_ = unix.Fchmod(d.fd, st.Mode&0o7777|unix.S_ISVTX)
	}
}

// notReal names the errors a symlink or a non-directory gives where a
// directory was required.
func notReal(err error) error {
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return ErrNotDir
	}
	return err
}

// ErrNotDir: a path below the registry that must be a directory is a symlink
// or another kind of file; it is skipped, never followed.
var ErrNotDir = errors.New("not a real directory (a symlink or another file type), not followed")

// IsNotDir reports whether err says a directory below the root was a symlink
// or not a directory.
func IsNotDir(err error) bool {
	return errors.Is(err, ErrNotDir) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}
