package safefs

import (
	"encoding/binary"
	"io/fs"
	"sort"

	"golang.org/x/sys/unix"
)

// ReadDir lists the directory rel, sorted by name. Entries come from
// getdents on the held descriptor; Info re-resolves the entry beneath d and
// does not follow it.
func (d *Dir) ReadDir(rel string) ([]fs.DirEntry, error) {
	fd, err := d.open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, d.pathErr("readdir", rel, err)
	}
	defer unix.Close(fd)
	ents, err := readEntries(fd)
	if err != nil {
		return nil, d.pathErr("readdir", rel, err)
	}
	out := make([]fs.DirEntry, len(ents))
	for k, e := range ents {
		e.d, e.rel = d, rel
		out[k] = e
	}
	return out, nil
}

type dirEntry struct {
	d    *Dir
	rel  string
	name string
	typ  fs.FileMode
}

func (e *dirEntry) Name() string      { return e.name }
func (e *dirEntry) IsDir() bool       { return e.typ.IsDir() }
func (e *dirEntry) Type() fs.FileMode { return e.typ }
func (e *dirEntry) Info() (fs.FileInfo, error) {
	if e.rel == "" || e.rel == "." {
		return e.d.Lstat(e.name)
	}
	return e.d.Lstat(e.rel + "/" + e.name)
}

// readEntries reads every entry of the open directory fd, without "." and
// "..". A file system that does not report types (DT_UNKNOWN) gets an
// fstatat on the same descriptor, never a path lookup.
func readEntries(fd int) ([]*dirEntry, error) {
	var out []*dirEntry
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			typ := b[18]
			name := cstring(b[19:reclen])
			b = b[reclen:]
			if name == "." || name == ".." {
				continue
			}
			out = append(out, &dirEntry{name: name, typ: direntType(fd, name, typ)})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out, nil
}

func cstring(b []byte) string {
	for k, c := range b {
		if c == 0 {
			return string(b[:k])
		}
	}
	return string(b)
}

func direntType(fd int, name string, typ byte) fs.FileMode {
	switch typ {
	case unix.DT_DIR:
		return fs.ModeDir
	case unix.DT_REG:
		return 0
	case unix.DT_LNK:
		return fs.ModeSymlink
	case unix.DT_FIFO:
		return fs.ModeNamedPipe
	case unix.DT_SOCK:
		return fs.ModeSocket
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_BLK:
		return fs.ModeDevice
	}
	var st unix.Stat_t
	if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return fs.ModeIrregular
	}
	return fileMode(st.Mode).Type()
}
