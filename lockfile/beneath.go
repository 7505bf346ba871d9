package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"syscall"

	"github.com/cargo-shim/cargo-shim/shim/store/safefs"
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

// openLockFile opens (creating it, and its directories, if missing) the lock
// file at path, read-only, never following a link below a declared root.
func openLockFile(path string) (int, error) {
	d, rel, ok, err := anchor(path)
	if err != nil {
		return -1, err
	}
	if !ok {
		return openUnanchored(path)
	}
	for attempt := 0; ; attempt++ {
		fd, err := d.OpenLock(rel, filePerm)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return fd, unwrapPathErr(err)
		}
		sub, mkErr := d.MkdirAll(dirOf(rel), safefs.Shared)
		if mkErr != nil {
			return -1, mkErr
		}
		sub.Close()
	}
}

// openUnanchored is for lock files outside any registry (a home's
// .package-cache): O_NOFOLLOW on the file itself.
func openUnanchored(path string) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, filePerm)
		if err == nil || !errors.Is(err, unix.ENOENT) || attempt == 3 {
			return fd, err
		}
		if mkErr := mkdirShared(dirOf(path)); mkErr != nil {
			return -1, mkErr
		}
	}
}

// sameFile reports whether path still names the file held as st.
func sameFile(path string, st *unix.Stat_t) bool {
	d, rel, ok, err := anchor(path)
	if err != nil {
		return false
	}
	var now unix.Stat_t
	if !ok {
		if unix.Lstat(path, &now) != nil {
			return false
		}
	} else {
		fi, err := d.Lstat(rel)
		if err != nil {
			return false
		}
		now = statOf(fi)
	}
	return now.Ino == st.Ino && now.Dev == st.Dev
}

func statOf(fi fs.FileInfo) unix.Stat_t {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return unix.Stat_t{}
	}
	return unix.Stat_t{Dev: st.Dev, Ino: st.Ino}
}
