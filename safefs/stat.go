package safefs

import (
	"io/fs"
	"path"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lstat describes rel itself (a symlink is reported, not followed).
func (d *Dir) Lstat(rel string) (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := d.LstatRaw(rel, &st); err != nil {
		return nil, err
	}
	return fileInfo(path.Base(rel), &st), nil
}

// LstatRaw is Lstat into a raw stat buffer, for hot loops: one fstatat when
// rel is a single name, else the parent resolved beneath d and an fstatat in
// it. The returned error is the bare errno (wrapped in a PathError).
func (d *Dir) LstatRaw(rel string, st *unix.Stat_t) error {
	if component(rel) {
		// The hot case, a name in d: no path to clean or split.
		if err := unix.Fstatat(d.fd, rel, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return d.pathErr("lstat", rel, err)
		}
		return nil
	}
	parts, err := split(rel)
	if err != nil {
		return d.pathErr("lstat", rel, err)
	}
	switch len(parts) {
	case 0:
		err = unix.Fstat(d.fd, st)
	case 1:
		err = unix.Fstatat(d.fd, parts[0], st, unix.AT_SYMLINK_NOFOLLOW)
	default:
		var pfd int
		var name string
		pfd, name, err = d.parent(rel)
		if err == nil {
			err = unix.Fstatat(pfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
			unix.Close(pfd)
		}
	}
	if err != nil {
		return d.pathErr("lstat", rel, err)
	}
	return nil
}

// Stat describes the directory itself.
func (d *Dir) Stat() (fs.FileInfo, error) { return d.Lstat(".") }

// FileInfo describes an fstat result; Sys() is a *syscall.Stat_t, as from
// os.Lstat.
func FileInfo(name string, st *unix.Stat_t) fs.FileInfo { return fileInfo(name, st) }

func fileInfo(name string, st *unix.Stat_t) fs.FileInfo {
	return &info{name: name, st: syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
		Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}}
}

type info struct {
	name string
	st   syscall.Stat_t
}

func (i *info) Name() string       { return i.name }
func (i *info) Size() int64        { return i.st.Size }
func (i *info) ModTime() time.Time { return time.Unix(i.st.Mtim.Sec, i.st.Mtim.Nsec) }
func (i *info) IsDir() bool        { return i.Mode().IsDir() }
func (i *info) Sys() any           { return &i.st }
func (i *info) Mode() fs.FileMode  { return fileMode(i.st.Mode) }

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
