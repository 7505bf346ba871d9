package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
	"golang.org/x/sys/unix"
)

// Lock files live in a registry other uids can write. A path-based open,
// even with O_NOFOLLOW, follows a symlink planted at any directory above the
// file (".cargo-shim/locks -> /etc"), so a root run would create directories
// and lock files wherever another uid pointed. A path below a root declared
// with Beneath is therefore opened through safefs: resolved beneath the
// root's descriptor, with no symlink followed anywhere below it, and its
// missing directories are created race-free with the sticky shared mode.

var beneath struct {
	sync.RWMutex
	roots map[string]*safefs.Dir // nil value: the root could not be opened
}

// Beneath declares root a registry: from now on every lock path below it is
// resolved beneath it (this process and holders it starts). Idempotent.
func Beneath(root string) error {
	root = strings.TrimRight(root, "/")
	beneath.Lock()
	defer beneath.Unlock()
	if d, ok := beneath.roots[root]; ok && d != nil {
		return nil
	}
	if beneath.roots == nil {
		beneath.roots = map[string]*safefs.Dir{}
	}
	d, err := safefs.OpenRoot(root)
	beneath.roots[root] = d // nil on error: its paths fail, never fall back
	return err
}

// beneathRoots lists the declared roots, for a holder to declare too.
func beneathRoots() []string {
	beneath.RLock()
	defer beneath.RUnlock()
	var out []string
	for r := range beneath.roots {
		out = append(out, r)
	}
	return out
}

// anchor finds the declared root path lies below (the longest), and path
// relative to it.
func anchor(path string) (d *safefs.Dir, rel string, ok bool, err error) {
	beneath.RLock()
	defer beneath.RUnlock()
	best := ""
	for r := range beneath.roots {
		if strings.HasPrefix(path, r+"/") && len(r) > len(best) {
			best = r
		}
	}
	if best == "" {
		return nil, "", false, nil
	}
	if beneath.roots[best] == nil {
		return nil, "", true, fmt.Errorf("registry %s could not be opened", best)
	}
	return beneath.roots[best], path[len(best)+1:], true, nil
}

// openLockFlags opens the lock file at path with flags (see openAttempts)
// and O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, by its name in its directory held in
// dirs when it lies below a declared registry (ENOENT when a directory is
// missing: lockAt makes it with mkdirShared and retries). st receives the
// file's status.
func openLockFlags(path string, flags int, dirs *lockDirs, st *unix.Stat_t) (int, error) {
	ld, name, err := dirs.get(path)
	if err != nil {
		return -1, err
	}
	if ld == nil {
		fd, err := safefs.OpenLockPath(path, flags, filePerm, st)
		return fd, unwrapPathErr(err)
	}
	fd, err := ld.d.OpenLock(name, flags, filePerm, st)
	return fd, unwrapPathErr(err)
}

// mkdirBeneath is mkdirShared for a directory below a declared registry:
// safefs.MkdirAll, race-free and sticky. ok is false outside every registry.
func mkdirBeneath(dir string) (ok bool, err error) {
	d, rel, ok, err := anchor(dir)
	if err != nil || !ok {
		return ok, err
	}
	// As in mkdirShared: a component another host has just made can look
	// missing for a moment on a shared filesystem; retry briefly.
	delay := time.Millisecond
	for attempt := 0; ; attempt++ {
		sub, err := d.MkdirAll(rel, safefs.Shared)
		sub.Close()
		if !errors.Is(err, fs.ErrNotExist) || attempt == mkdirRetries {
			return true, err
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// stillAt reports whether path names the held file; below a declared
// registry it is looked up by name in its directory held in dirs (whose
// own place lockDirs.stillThere checks once the locks are taken).
func stillAt(path string, held heldFile, dirs *lockDirs) bool {
	ld, name, err := dirs.get(path)
	if err != nil {
		return false
	}
	var now unix.Stat_t
	if ld != nil {
		err = ld.d.LstatRaw(name, &now)
	} else {
		err = unix.Lstat(path, &now)
	}
	return err == nil && now.Dev == held.dev && now.Ino == held.ino
}

// lockDirs holds the lock directories of one acquisition open, each
// resolved once beneath its registry (no link followed): a lock file is then
// opened, and looked up again after its flock, by its name alone, one
// syscall each where resolving its whole path cost three. Once the locks are
// taken, stillThere checks that each directory is still the one at its
// path: together with each file's look-up by name after its flock, that is
// the whole path naming the held file, as one look-up of the path showed.
type lockDirs struct {
	mu sync.Mutex
	m  map[string]*lockDir
}

type lockDir struct {
	d        *safefs.Dir
	root     *safefs.Dir // the registry, and d's path relative to it
	rel      string
	dev, ino uint64
}

// get is path's directory held open, and path's last component; nil (and
// no error) for a path below no declared registry.
func (c *lockDirs) get(path string) (*lockDir, string, error) {
	root, rel, ok, err := anchor(path)
	if err != nil || !ok {
		return nil, "", err
	}
	dir, name := ".", rel
	if k := strings.LastIndexByte(rel, '/'); k >= 0 {
		dir, name = rel[:k], rel[k+1:]
	}
	key := path[:len(path)-len(name)]
	c.mu.Lock()
	defer c.mu.Unlock()
	if ld := c.m[key]; ld != nil {
		return ld, name, nil
	}
	d, err := root.OpenDir(dir)
	if err != nil {
		return nil, "", unwrapPathErr(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.Fd(), &st); err != nil {
		d.Close()
		return nil, "", err
	}
	if c.m == nil {
		c.m = map[string]*lockDir{}
	}
	ld := &lockDir{d: d, root: root, rel: dir, dev: st.Dev, ino: st.Ino}
	c.m[key] = ld
	return ld, name, nil
}

// forget drops path's directory: it was missing, and is made again.
func (c *lockDirs) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, ld := range c.m {
		if strings.HasPrefix(path, key) && strings.IndexByte(path[len(key):], '/') < 0 {
			ld.d.Close()
			delete(c.m, key)
		}
	}
}

// stillThere reports whether every held directory is still the one at its
// path.
func (c *lockDirs) stillThere() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st unix.Stat_t
	for _, ld := range c.m {
		if ld.root.LstatRaw(ld.rel, &st) != nil || st.Dev != ld.dev || st.Ino != ld.ino {
			return false
		}
	}
	return true
}

func (c *lockDirs) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, ld := range c.m {
		ld.d.Close()
		delete(c.m, key)
	}
}

// keepsMoving is how often a set is taken again because a lock directory
// was replaced meanwhile before the acquisition gives up.
const keepsMoving = 10

// inLockDirs runs take, which takes one lock or a set with dirs, and keeps
// what it took only if every lock directory it used is still at its path;
// else it releases it and takes it again.
func inLockDirs[T interface{ Release() error }](path string, take func(dirs *lockDirs) (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		dirs := &lockDirs{}
		held, err := take(dirs)
		moved := err == nil && !dirs.stillThere()
		dirs.close()
		if !moved {
			return held, err
		}
		held.Release()
		if attempt == keepsMoving {
			var none T
			return none, &fs.PathError{Op: "lock", Path: path, Err: errors.New("lock directory keeps being replaced")}
		}
	}
}
