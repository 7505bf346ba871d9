package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/safefs"
)

// Every filesystem operation on the registry goes through these helpers:
// they take the absolute paths the rest of the store builds (Extraction,
// Tarball, LockPath...) and resolve them beneath the registry's descriptor
// without following any symlink (safefs). A path outside the registry is
// an error, never an operation.

var regRoots struct {
	sync.Mutex
	dirs map[string]*safefs.Dir
}

// fsys is the registry held open, one descriptor per registry per process.
// The first call also declares it to lockfile, so that lock files and their
// directories are resolved the same way.
func (r Registry) fsys() (*safefs.Dir, error) {
	root := filepath.Clean(r.Root)
	regRoots.Lock()
	defer regRoots.Unlock()
	if d := regRoots.dirs[root]; d != nil {
		return d, nil
	}
	d, err := safefs.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	if regRoots.dirs == nil {
		regRoots.dirs = map[string]*safefs.Dir{}
	}
	regRoots.dirs[root] = d
	if err := lockfile.Beneath(root); err != nil {
		return nil, err
	}
	return d, nil
}

// Open opens the registry for this process (idempotent): from then on its
// lock files, in this process and the holders it starts, resolve beneath
// it too.
func (r Registry) Open() error {
	_, err := r.fsys()
	return err
}

// Lstat is os.Lstat for a path below the registry, resolved beneath it.
func (r Registry) Lstat(p string) (fs.FileInfo, error) { return r.lstat(p) }

// ReadDir is os.ReadDir for a directory below the registry.
func (r Registry) ReadDir(p string) ([]fs.DirEntry, error) { return r.readDir(p) }

// resolve resolves p, a path below the registry, to the registry and p relative
// to it.
func (r Registry) resolve(p string) (*safefs.Dir, string, error) {
	root := filepath.Clean(r.Root)
	rel, ok := strings.CutPrefix(filepath.Clean(p), root+"/")
	if !ok {
		return nil, "", &fs.PathError{Op: "open", Path: p, Err: fmt.Errorf("not below the registry %s", root)}
	}
	d, err := r.fsys()
	return d, rel, err
}

func (r Registry) lstat(p string) (fs.FileInfo, error) {
	d, rel, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return d.Lstat(rel)
}

func (r Registry) lstatRaw(p string, st *unix.Stat_t) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	return d.LstatRaw(rel, st)
}

// rootStat is fstat of the registry's held descriptor: the directory every
// path below it was resolved in, whatever its path names now.
func (r Registry) rootStat(st *unix.Stat_t) error {
	d, err := r.fsys()
	if err != nil {
		return err
	}
	return d.LstatRaw(".", st)
}

func (r Registry) readDir(p string) ([]fs.DirEntry, error) {
	d, rel, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return d.ReadDir(rel)
}

func (r Registry) open(p string) (*os.File, error) {
	d, rel, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return d.Open(rel)
}

func (r Registry) readFile(p string, limit int64) ([]byte, error) {
	d, rel, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return d.ReadFile(rel, limit)
}

func (r Registry) unlink(p string) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	return d.Remove(rel)
}

func (r Registry) removeAll(p string) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	return d.RemoveAll(rel)
}

func (r Registry) rename(from, to string) error {
	d, relFrom, err := r.resolve(from)
	if err != nil {
		return err
	}
	_, relTo, err := r.resolve(to)
	if err != nil {
		return err
	}
	return d.Rename(relFrom, d, relTo)
}

func (r Registry) exchange(a, b string) error {
	d, relA, err := r.resolve(a)
	if err != nil {
		return err
	}
	_, relB, err := r.resolve(b)
	if err != nil {
		return err
	}
	return d.Exchange(relA, d, relB)
}

// mkdirAll makes sure p is a real directory below the registry, creating
// missing components with perm (safefs.Shared for the shim's own).
func (r Registry) mkdirAll(p string, perm fs.FileMode) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	sub, err := d.MkdirAll(rel, perm)
	sub.Close()
	return err
}

func (r Registry) writeAtomic(p string, data []byte, perm fs.FileMode) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	return d.WriteFile(rel, data, perm)
}

// chtimes sets p's times through a descriptor of it, never through a link.
func (r Registry) chtimes(p string, t time.Time) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	return d.Chtimes(rel, t, t)
}

// subdir opens p, a directory below the registry, as a Dir of its own.
func (r Registry) subdir(p string) (*safefs.Dir, error) {
	d, rel, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return d.OpenDir(rel)
}

// below finds the registry opened in this process that p lies in, and p
// relative to it. Outside every registry (a path a test or an operator
// chose), p's parent directory stands in as the root. done releases what
// below opened.
func below(p string) (d *safefs.Dir, rel string, done func(), err error) {
	p = filepath.Clean(p)
	regRoots.Lock()
	best := ""
	for root := range regRoots.dirs {
		if strings.HasPrefix(p, root+"/") && len(root) > len(best) {
			best = root
		}
	}
	d = regRoots.dirs[best]
	regRoots.Unlock()
	if d != nil {
		return d, p[len(best)+1:], func() {}, nil
	}
	d, err = safefs.OpenRoot(filepath.Dir(p))
	if err != nil {
		return nil, "", nil, err
	}
	return d, filepath.Base(p), func() { d.Close() }, nil
}

// openBelow opens the regular file p for reading without following a link
// below its registry (or its parent directory).
func openBelow(p string) (*os.File, error) {
	d, rel, done, err := below(p)
	if err != nil {
		return nil, err
	}
	defer done()
	return d.Open(rel)
}

// readBelow reads the regular file p, at most limit bytes, without following
// a link below its registry.
func readBelow(p string, limit int64) ([]byte, error) {
	d, rel, done, err := below(p)
	if err != nil {
		return nil, err
	}
	defer done()
	return d.ReadFile(rel, limit)
}

// mkdirUmask makes sure p is a directory, creating missing components as
// mkdir(2) does (0o777 less the umask): cargo's own directories.
func (r Registry) mkdirUmask(p string) error {
	d, rel, err := r.resolve(p)
	if err != nil {
		return err
	}
	parts := strings.Split(rel, "/")
	for k := range parts {
		if err := d.MkdirUmask(strings.Join(parts[:k+1], "/"), 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// FS is the registry held open (Open), for packages that keep files of
// their own below it (stats): resolved beneath it, no link followed.
func (r Registry) FS() (*safefs.Dir, error) { return r.fsys() }
