package safefs

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// maxDepth bounds RemoveAll's recursion: a crate is never this deep, and a
// tree that is cannot make the run recurse without end.
const maxDepth = 256

// RemoveAll removes rel and everything below it; a missing rel is no error.
// It never follows a link and never leaves d: each directory it descends
// into is opened afresh beneath d by its full relative path (so a directory
// renamed away meanwhile is not followed out of d), and each entry is
// removed with unlinkat on the descriptor it was listed from.
func (d *Dir) RemoveAll(rel string) error {
	parts, err := split(rel)
	if err != nil || len(parts) == 0 {
		return d.pathErr("removeall", rel, fs.ErrInvalid)
	}
	err = d.Remove(rel)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := d.emptyDir(rel, 0); err != nil {
		return err
	}
	if err := d.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// emptyDir removes everything inside the directory rel.
func (d *Dir) emptyDir(rel string, depth int) error {
	if depth > maxDepth {
		return d.pathErr("removeall", rel, errors.New("directory tree too deep"))
	}
	fd, err := d.open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return d.pathErr("removeall", rel, err)
	}
	defer unix.Close(fd)
	ents, err := readEntries(fd)
	if err != nil {
		return d.pathErr("removeall", rel, err)
	}
	var first error
	for _, e := range ents {
		err := unlinkAny(fd, e.name)
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			if err = d.emptyDir(rel+"/"+e.name, depth+1); err == nil {
				err = unix.Unlinkat(fd, e.name, unix.AT_REMOVEDIR)
			}
		}
		if err != nil && !errors.Is(err, unix.ENOENT) && first == nil {
			first = d.pathErr("removeall", rel+"/"+e.name, err)
		}
	}
	return first
}
