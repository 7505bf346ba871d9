package safefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
	"golang.org/x/sys/unix"
)

// modes runs f once with openat2 and once with the per-component fallback.
func modes(t *testing.T, f func(t *testing.T, open func(string) *Dir)) {
	if !hasOpenat2() {
		t.Log("this kernel has no openat2: both runs use the fallback")
	}
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			f(t, func(dir string) *Dir {
				d, err := openRoot(dir, walk)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
				return d
			})
		})
	}
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// layout makes a/b/c/f (+ a/b/c/sub/g) under both the root and a decoy
// outside it, so that every path below the root also names a decoy file.
func layout(t *testing.T) (root, outside string) {
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, dir := range []string{root, outside} {
		write(t, filepath.Join(dir, "a/b/c/f"), "content of "+dir)
		write(t, filepath.Join(dir, "a/b/c/sub/g"), "g of "+dir)
	}
	old := time.Unix(1_600_000_000, 0)
	filepath.Walk(outside, func(p string, _ fs.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	return root, outside
}

// plant replaces the component k of a/b/c/f below root with a symlink to the
// same path below outside.
func plant(t *testing.T, root, outside string, k int) string {
	comps := strings.Split("a/b/c/f", "/")
	rel := filepath.Join(comps[:k+1]...)
	if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, rel), filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
	return rel
}

// ops is every operation of the package on a path below a/b/c; with a
// symlink planted at or above its target each must fail, or act on the
// link itself (onLink), and never reach the decoy.
var ops = map[string]struct {
	target string
	onLink bool
	f      func(d *Dir) error
}{
	"Open":     {"a/b/c/f", false, func(d *Dir) error { f, err := d.Open("a/b/c/f"); f.Close(); return err }},
	"ReadFile": {"a/b/c/f", false, func(d *Dir) error { _, err := d.ReadFile("a/b/c/f", 0); return err }},
	"Create":   {"a/b/c/new", false, func(d *Dir) error { f, err := d.Create("a/b/c/new", 0o666); f.Close(); return err }},
	"CreateF":  {"a/b/c/f", false, func(d *Dir) error { f, err := d.Create("a/b/c/f", 0o666); f.Close(); return err }},
	"Write":    {"a/b/c/f", true, func(d *Dir) error { return d.WriteFile("a/b/c/f", []byte("x"), 0o666) }},
	"OpenLock": {"a/b/c/f.lock", false, func(d *Dir) error {
		fd, err := d.OpenLock("a/b/c/f.lock", unix.O_RDWR|unix.O_CREAT, 0o666, nil)
		unix.Close(fd)
		return err
	}},
	"LockF": {"a/b/c/f", false, func(d *Dir) error {
		fd, err := d.OpenLock("a/b/c/f", unix.O_RDWR|unix.O_CREAT, 0o666, nil)
		unix.Close(fd)
		return err
	}},
	"Lstat":    {"a/b/c/f", true, func(d *Dir) error { _, err := d.Lstat("a/b/c/f"); return err }},
	"ReadDir":  {"a/b/c/sub", false, func(d *Dir) error { _, err := d.ReadDir("a/b/c/sub"); return err }},
	"OpenDir":  {"a/b/c", false, func(d *Dir) error { s, err := d.OpenDir("a/b/c"); s.Close(); return err }},
	"MkdirAll": {"a/b/c/new/x", false, func(d *Dir) error { s, err := d.MkdirAll("a/b/c/new/x", Shared); s.Close(); return err }},
	"Mkdir":    {"a/b/c/new", false, func(d *Dir) error { s, err := d.Mkdir("a/b/c/new", Shared); s.Close(); return err }},
	"MkdirF":   {"a/b/c/f", false, func(d *Dir) error { s, err := d.MkdirAll("a/b/c/f", Shared); s.Close(); return err }},
	"Chmod":    {"a/b/c/f", false, func(d *Dir) error { return d.Chmod("a/b/c/f", 0o777) }},
	"ChmodDir": {"a/b/c", false, func(d *Dir) error { return d.Chmod("a/b/c", 0o777) }},
	"Chtimes":  {"a/b/c/f", false, func(d *Dir) error { return d.Chtimes("a/b/c/f", time.Time{}, time.Time{}) }},
	"Rename":   {"a/b/c/f", true, func(d *Dir) error { return d.Rename("a/b/c/f", d, "moved") }},
	"RenameTo": {"a/b/c/sub/g", false, func(d *Dir) error { return d.Rename("a/b/c/sub/g", d, "a/b/c/sub/h") }},
	"Exchange": {"a/b/c/f", true, func(d *Dir) error { return d.Exchange("a/b/c/sub", d, "a/b/c/f") }},
	"Remove":   {"a/b/c/sub/g", false, func(d *Dir) error { return d.Remove("a/b/c/sub/g") }},
	"RmAll":    {"a/b/c", true, func(d *Dir) error { return d.RemoveAll("a/b/c") }},
	"RmAllF":   {"a/b/c/f", true, func(d *Dir) error { return d.RemoveAll("a/b/c/f") }},
	"Symlink":  {"a/b/c/l", false, func(d *Dir) error { return d.Symlink("/etc/passwd", "a/b/c/l") }},
}

func TestSymlinkAtEveryComponent(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		for k := range 4 {
			for name, op := range ops {
				root, outside := layout(t)
				rel := plant(t, root, outside, k)
				before, err := safefstest.Snapshot(outside)
				if err != nil {
					t.Fatal(err)
				}
				err = op.f(open(root))
				safefstest.Unchanged(t.Errorf, outside, before)
				above := strings.HasPrefix(op.target, rel+"/")
				if err == nil && (above || rel == op.target && !op.onLink) {
					t.Errorf("%s with %s a symlink: no error", name, rel)
				}
			}
		}
	})
}

func TestOpsWorkOnRealDirs(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		for name, op := range ops {
			root, _ := layout(t)
			if err := op.f(open(root)); err != nil && name != "CreateF" && name != "MkdirF" {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestEscapesRefused(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root, _ := layout(t)
		d := open(root)
		for _, rel := range []string{"../outside/a", "a/../../outside", "/etc/passwd", "a/\x00b"} {
			if _, err := d.Lstat(rel); err == nil {
				t.Errorf("Lstat(%q) succeeded", rel)
			}
			if _, err := d.MkdirAll(rel, Shared); err == nil {
				t.Errorf("MkdirAll(%q) succeeded", rel)
			}
		}
	})
}

func TestMkdirAllShared(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root := t.TempDir()
		old := unix.Umask(0o077)
		defer unix.Umask(old)
		s, err := open(root).MkdirAll("x/y/z", Shared)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		for _, p := range []string{"x", "x/y", "x/y/z"} {
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil || fi.Mode() != fs.ModeDir|Shared {
				t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, fs.ModeDir|Shared)
			}
		}
		// A pre-sticky registry's 0777 directory gets the bit.
		os.Mkdir(filepath.Join(root, "old"), 0o777)
		os.Chmod(filepath.Join(root, "old"), 0o777)
		s, err = open(root).MkdirAll("old", Shared)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if fi, _ := os.Lstat(filepath.Join(root, "old")); fi.Mode() != fs.ModeDir|Shared {
			t.Errorf("old: %v", fi.Mode())
		}
		// Not a real directory: skipped with ErrNotDir.
		os.Symlink(t.TempDir(), filepath.Join(root, "link"))
		if _, err := open(root).MkdirAll("link/q", Shared); !IsNotDir(err) {
			t.Errorf("MkdirAll through a link: %v", err)
		}
	})
}

func TestOpenFIFODoesNotBlock(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root := t.TempDir()
		if err := unix.Mkfifo(filepath.Join(root, "f"), 0o666); err != nil {
			t.Fatal(err)
		}
		d := open(root)
		if _, err := d.Open("f"); err == nil {
			t.Error("opened a FIFO")
		}
		if _, err := d.OpenLock("f", unix.O_RDWR|unix.O_CREAT, 0o666, nil); err == nil {
			t.Error("locked a FIFO")
		}
		if err := d.Chtimes("f", time.Time{}, time.Time{}); err != nil {
			t.Errorf("chtimes a FIFO (through its descriptor): %v", err)
		}
	})
}

func TestExchange(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root := t.TempDir()
		write(t, filepath.Join(root, "a/x"), "a")
		write(t, filepath.Join(root, "b/x"), "b")
		d := open(root)
		if err := d.Exchange("a", d, "b"); err != nil {
			t.Fatal(err)
		}
		if data, _ := d.ReadFile("a/x", 0); string(data) != "b" {
			t.Errorf("a/x = %q after exchange", data)
		}
		if err := d.RenameNoReplace("a", d, "b"); !errors.Is(err, unix.EEXIST) {
			t.Errorf("RenameNoReplace over a directory: %v", err)
		}
	})
}

func TestRemoveAllStaysInside(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root, outside := layout(t)
		os.Symlink(outside, filepath.Join(root, "a/b/c/sub/toout"))
		os.Symlink(filepath.Join(outside, "a/b/c/f"), filepath.Join(root, "a/b/tofile"))
		os.Link(filepath.Join(outside, "a/b/c/f"), filepath.Join(root, "a/hard"))
		before, _ := safefstest.Snapshot(outside)
		if err := open(root).RemoveAll("a"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(root, "a")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a still there: %v", err)
		}
		// The hard link shared the decoy's inode: only its link count moved.
		after, _ := safefstest.Snapshot(outside)
		if d := safefstest.Diff(before, after); d != "" {
			t.Errorf("outside changed:\n%s", d)
		}
	})
}

func TestReadDir(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root, outside := layout(t)
		os.Symlink(outside, filepath.Join(root, "a/b/c/link"))
		ents, err := open(root).ReadDir("a/b/c")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e.Name()+":"+fi.Mode().Type().String()+":"+e.Type().String())
		}
		want := "f:----------:----------,link:L---------:L---------,sub:d---------:d---------"
		if strings.Join(got, ",") != want {
			t.Errorf("got %s\nwant %s", strings.Join(got, ","), want)
		}
	})
}

// Every open of an existing file follows the one rule, whatever the flags:
// a FIFO is refused at once, naming it (O_EXCL never opens one at all).
func TestEveryOpenRefusesFIFO(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root := t.TempDir()
		fifo := filepath.Join(root, "f")
		if err := unix.Mkfifo(fifo, 0o666); err != nil {
			t.Fatal(err)
		}
		d := open(root)
		for _, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_RDWR | os.O_CREATE} {
			if f, err := d.OpenFile("f", flag, 0o666); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), fifo) {
				f.Close()
				t.Errorf("OpenFile(%#x) of a FIFO: %v", flag, err)
			}
		}
		if _, err := d.ReadFile("f", 10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadFile of a FIFO: %v", err)
		}
		if _, err := OpenLockPath(fifo, unix.O_RDWR|unix.O_CREAT, 0o666, nil); !errors.Is(err, ErrNotRegular) {
			t.Errorf("OpenLockPath of a FIFO: %v", err)
		}
	})
}
