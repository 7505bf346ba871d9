package groupshare

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// InitReport is what Init did (`cargo-shim init --json`).
type InitReport struct {
	Registry string `json:"registry"`
	Group    string `json:"group"`
	Gid      int    `json:"gid"`
	Dirs     int    `json:"dirs"`
	Files    int    `json:"files"`
	Changed  int    `json:"changed"`
	// Failed lists entries Init could not change (another uid's, as a
	// non-root caller), at most maxFailed of them; FailedCount counts all.
	Failed      []string `json:"failed"`
	FailedCount int      `json:"failed_count"`
}

const maxFailed = 10

// ErrNotAllowed says the caller may not prepare the registry: it is neither
// root nor the registry's owner, or as owner not in the group.
var ErrNotAllowed = errors.New("not allowed")

// Init makes root group-shared by gid: root first (group, setgid, then the
// mark, so that runs starting from then on use the group umask), then every
// directory (group gid, group rwx, setgid) and regular file (group gid,
// group bits = owner bits) below it. Symlinks are left alone and never
// followed. Idempotent: entries already right are not touched. Safe while
// runners run: it only adds group bits and changes groups; entries created
// by a run that began before Init are caught by running Init again.
func Init(root string, gid int) (*InitReport, error) {
	rep := &InitReport{Registry: root, Group: GroupName(gid), Gid: gid, Failed: []string{}}
	if err := allowed(root, gid); err != nil {
		return rep, err
	}
	var markErr error
	err := walk(root, nil, func(n *node) error {
		if n.Err != nil {
			rep.fail(n.Path, n.Err)
			return nil
		}
		switch {
		case n.isDir():
			rep.Dirs++
			rep.fix(n, gid, n.Rel == trashRel)
			if n.Rel == "." {
				rep.stickyRoot(n)
				markErr = writeMark(n.Fd, gid)
			}
		case n.isReg():
			rep.Files++
			// O_PATH: the file is never opened for reading, so a device or
			// FIFO swapped in meanwhile has no effect.
			fd, err := unix.Openat(n.Parent, n.Name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			if err != nil {
				rep.fail(n.Path, err)
				return nil
			}
			var st unix.Stat_t
			// The path may name another file than the one listed: change
			// what was opened, and only if it is a regular file.
			if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
				n.Fd, n.Stat, n.opath = fd, st, true
				rep.fix(n, gid, false)
			}
			unix.Close(fd)
		}
		return nil
	})
	if err == nil {
		err = markErr
	}
	if err == nil && rep.FailedCount > 0 {
		err = fmt.Errorf("%d entries left as they were (first: %s): run as root", rep.FailedCount, rep.Failed[0])
	}
	return rep, err
}

// allowed fails early with a clear message when the caller cannot do it.
func allowed(root string, gid int) error {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return &os.PathError{Op: "stat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", root)
	}
	euid := os.Geteuid()
	switch {
	case euid == 0:
		return nil
	case int(st.Uid) != euid:
		return fmt.Errorf("%w: %s belongs to uid %d and this is uid %d: run it as root", ErrNotAllowed, root, st.Uid, euid)
	case !InGroup(gid):
		return fmt.Errorf("%w: uid %d is not in group %s, so it cannot give files that group: run it as root", ErrNotAllowed, euid, GroupName(gid))
	}
	return nil
}

// trashRel is the shim's trash. Elsewhere in .cargo-shim the shim's own
// directories are world-writable and sticky (no uid renames another's
// entries); in the trash of a group-shared registry every member must
// delete what any other put there, so it is the group's alone, not sticky.
var trashRel = shimDirName + "/trash"

// fix gives one opened entry the group and the group bits it needs.
func (rep *InitReport) fix(n *node, gid int, groupOnly bool) {
	changed := false
	if int(n.Stat.Gid) != gid {
		if err := n.chgrp(gid); err != nil {
			rep.fail(n.Path, ownerErr(err, n))
			return
		}
		changed = true
		// chown may clear setgid (and, for files, setuid) bits: read back.
		if err := unix.Fstat(n.Fd, &n.Stat); err != nil {
			rep.fail(n.Path, err)
			return
		}
	}
	mode := n.Stat.Mode & 0o7777
	want := wantMode(mode, n.isDir())
	if groupOnly {
		want &^= unix.S_ISVTX | 0o002
	}
	if want != mode {
		if err := n.chmod(want); err != nil {
			rep.fail(n.Path, ownerErr(err, n))
			return
		}
		changed = true
	}
	if changed {
		rep.Changed++
	}
}

// stickyRoot makes the registry root sticky: members still create what
// cargo makes there (index/, cache/, src/), but none renames or removes an
// entry another uid owns, so the cargo lock files a root-owned registry
// root holds for root are root's to replace alone
// (docs/package-cache-lock.md).
func (rep *InitReport) stickyRoot(n *node) {
	if unix.Fstat(n.Fd, &n.Stat) != nil || n.Stat.Mode&unix.S_ISVTX != 0 {
		return
	}
	if err := n.chmod(n.Stat.Mode&0o7777 | unix.S_ISVTX); err != nil {
		rep.fail(n.Path, ownerErr(err, n))
		return
	}
	rep.Changed++
}

// chgrp changes the group of the opened entry.
func (n *node) chgrp(gid int) error {
	if n.opath {
		return unix.Fchownat(n.Fd, "", -1, gid, unix.AT_EMPTY_PATH)
	}
	return unix.Fchown(n.Fd, -1, gid)
}

// chmod changes the mode of the opened entry. An O_PATH descriptor takes no
// fchmod; its /proc/self/fd link names the very inode it holds.
func (n *node) chmod(mode uint32) error {
	if n.opath {
		return unix.Chmod("/proc/self/fd/"+strconv.Itoa(n.Fd), mode)
	}
	return unix.Fchmod(n.Fd, mode)
}

// wantMode: directories group rwx and setgid; files their owner's bits
// for the group too. Nothing is ever taken away.
func wantMode(mode uint32, dir bool) uint32 {
	if dir {
		return mode | 0o070 | unix.S_ISGID
	}
	return mode | (mode&0o700)>>3
}

func ownerErr(err error, n *node) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("owned by uid %d: %w", n.Stat.Uid, err)
	}
	return err
}

func (rep *InitReport) fail(p string, err error) {
	rep.FailedCount++
	if len(rep.Failed) < maxFailed {
		rep.Failed = append(rep.Failed, p+": "+err.Error())
	}
}

// writeMark records gid in .cargo-shim/group under the registry descriptor
// rootFd: the directory is made if missing (world-writable like the rest of
// .cargo-shim, and setgid), the mark replaced atomically.
func writeMark(rootFd, gid int) error {
	err := unix.Mkdirat(rootFd, shimDirName, 0o777)
	if err == nil {
		if fd, err := unix.Openat(rootFd, shimDirName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			unix.Fchmod(fd, 0o777|unix.S_ISGID)
			unix.Close(fd)
		}
	} else if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating %s: %w", shimDirName, err)
	}
	dfd, err := unix.Openat(rootFd, shimDirName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", shimDirName, err)
	}
	defer unix.Close(dfd)
	// The walk then gives it its mode (see trashRel).
	if err := unix.Mkdirat(dfd, "trash", 0o775); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating %s/trash: %w", shimDirName, err)
	}
	if cur, err := readAt(dfd, MarkName); err == nil && strings.TrimSpace(cur) == strconv.Itoa(gid) {
		return nil
	}
	tmp := fmt.Sprintf(".%s.tmp-%d", MarkName, os.Getpid())
	unix.Unlinkat(dfd, tmp, 0)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("writing the mark %s: %w", MarkName, err)
	}
	_, werr := unix.Write(fd, []byte(strconv.Itoa(gid)+"\n"))
	unix.Fchmod(fd, 0o644)
	unix.Close(fd)
	if werr == nil {
		werr = unix.Renameat(dfd, tmp, dfd, MarkName)
	}
	if werr != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("writing the mark %s: %w", MarkName, werr)
	}
	return nil
}

func readAt(dfd int, name string) (string, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, 32)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// FixDirs gives the directories under dir that this uid may change (its
// own, or any as root) what Init gives them. Cargo chmods a directory that
// is a tarball entry to its tar mode, dropping group write and setgid; a
// run calls this on an extraction the first time it verifies it. Other
// uids' directories stay as they are, for status to list.
func FixDirs(dir string, gid int) {
	euid := os.Geteuid()
	rep := &InitReport{}
	walk(dir, func(string) bool { return false }, func(n *node) error {
		if n.Err == nil && n.isDir() && (euid == 0 || int(n.Stat.Uid) == euid) {
			rep.fix(n, gid, false)
		}
		return nil
	})
}
