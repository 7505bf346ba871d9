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
// and O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, resolved beneath its declared
// registry if it lies in one (ENOENT when a directory is missing: lockAt
// makes it with mkdirShared and retries).
func openLockFlags(path string, flags int) (int, error) {
	d, rel, ok, err := anchor(path)
	if err != nil {
		return -1, err
	}
	if !ok {
		fd, err := safefs.OpenLockPath(path, flags, filePerm)
		return fd, unwrapPathErr(err)
	}
	fd, err := d.OpenLock(rel, flags, filePerm)
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
// registry the path is resolved beneath it.
func stillAt(path string, held heldFile) bool {
	d, rel, ok, err := anchor(path)
	if err != nil {
		return false
	}
	var now unix.Stat_t
	if ok {
		err = d.LstatRaw(rel, &now)
	} else {
		err = unix.Lstat(path, &now)
	}
	return err == nil && now.Dev == held.dev && now.Ino == held.ino
}
