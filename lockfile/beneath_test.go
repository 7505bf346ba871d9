package lockfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
)

// A lock directory another uid replaced with a symlink must not make a lock,
// a set, a holder or MkdirShared create anything where the link points.
func TestLockDirSymlinkNotFollowed(t *testing.T) {
	base := t.TempDir()
	reg, outside := filepath.Join(base, "registry"), filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(reg, ".cargo-shim"), 0o777)
	os.MkdirAll(filepath.Join(outside, "rd"), 0o755)
	if err := Beneath(reg); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{".cargo-shim/locks", ".cargo-shim/locks/rd"} {
		os.RemoveAll(filepath.Join(reg, ".cargo-shim/locks"))
		if link == ".cargo-shim/locks/rd" {
			os.Mkdir(filepath.Join(reg, ".cargo-shim/locks"), 0o777)
		}
		target := outside
		if filepath.Base(link) == "rd" {
			target = filepath.Join(outside, "rd")
		}
		if err := os.Symlink(target, filepath.Join(reg, link)); err != nil {
			t.Fatal(err)
		}
		before, _ := safefstest.Snapshot(outside)
		p := filepath.Join(reg, ".cargo-shim/locks/rd/fnv-1.0.7.lock")
		if l, err := Try(p, Exclusive); err == nil {
			l.Release()
			t.Errorf("%s a symlink: Try succeeded", link)
		}
		if err := MkdirShared(filepath.Join(reg, ".cargo-shim/locks/rd/sub")); err == nil {
			t.Errorf("%s a symlink: MkdirShared succeeded", link)
		}
		h, err := StartHolder(os.Args[0], 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Lock([]string{p}, 10*time.Second, nil); err == nil {
			t.Errorf("%s a symlink: the holder locked", link)
		}
		h.Stop()
		safefstest.Unchanged(t.Errorf, outside, before)
	}
}

// Below a registry a lock file is opened, and looked up after its flock, by
// name in its directory held open (lockDirs). The lock returned must still
// be on the file the whole path names: when the lock file is replaced after
// the flock (gc removes lock files it holds), and when its directory is
// replaced (renamed away, a new one made at its path) after the flock, the
// lock is taken again on the file now at the path.
func TestBeneathLocksTheFileAtItsPath(t *testing.T) {
	defer func() { afterLock = nil }()
	reg := filepath.Join(t.TempDir(), "registry")
	if err := os.MkdirAll(filepath.Join(reg, ".cargo-shim", "locks", "rd"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Beneath(reg); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(reg, ".cargo-shim", "locks", "rd")
	p := filepath.Join(dir, "x-1.0.0.lock")
	replaceFile := func() {
		os.WriteFile(p+".new", nil, 0o666)
		os.Rename(p+".new", p)
	}
	replaceDir := func() {
		os.Rename(dir, dir+".old")
		os.Mkdir(dir, 0o777)
		os.WriteFile(p, nil, 0o666)
	}
	for what, replace := range map[string]func(){"file": replaceFile, "directory": replaceDir} {
		for name, lock := range primitives {
			t.Run(what+"/"+name, func(t *testing.T) {
				os.RemoveAll(dir + ".old")
				locksFileAtPath(t, lock, p, replace)
			})
		}
	}
}
