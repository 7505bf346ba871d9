package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// patchInPlace repairs the extraction root from tmp, a complete extraction
// of the same verified tarball beside it, so that no path of root is ever
// missing: a missing directory is renamed in whole, every file of the
// manifest is renamed over its namesake (one atomic rename each, within a
// filesystem), the marker last. It is the repair beside pinned builds where
// the filesystem cannot exchange two directories (GlusterFS, NFS): a build
// reading root meanwhile sees each file either as it was (an intact file's
// content is the same) or as the tarball has it, and keeps every file it
// opened. Nothing is removed; anything in the way that is not what the
// manifest expects (a file where a directory belongs) is an error, and
// the repair then waits for the exclusive lock.
func (r Registry) patchInPlace(tmp, root string, m *Manifest) error {
	moved := map[string]bool{}
	for _, d := range m.Dirs {
		if d == "." {
			continue
		}
		if moved[path.Dir(d)] {
			moved[d] = true
			continue
		}
		in, err := r.patchDir(tmp, root, d)
		if err != nil {
			return err
		}
		moved[d] = in
	}
	for _, fe := range m.Files {
		if moved[path.Dir(fe.Path)] {
			continue
		}
		rel := filepath.FromSlash(fe.Path)
		if err := r.rename(filepath.Join(tmp, rel), filepath.Join(root, rel)); err != nil {
			return err
		}
	}
	return r.rename(filepath.Join(tmp, markerName), filepath.Join(root, markerName))
}

// patchDir renames tmp's directory d into root when root lacks it (in:
// its whole tree is then in place), and accepts a directory already there.
func (r Registry) patchDir(tmp, root, d string) (in bool, err error) {
	p := filepath.Join(root, filepath.FromSlash(d))
	var st unix.Stat_t
	err = r.lstatRaw(p, &st)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, r.rename(filepath.Join(tmp, filepath.FromSlash(d)), p)
	case err != nil:
		return false, err
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return false, fmt.Errorf("%s is not a directory", p)
	}
	return false, nil
}
