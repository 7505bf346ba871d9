package safefs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A Tree (the warm check's stamps) never follows a symlink: not at its
// root, not at a directory on the way to a deeper path, not at the last
// component; and ".." or an empty component is refused. Each symlink
// points at the decoy tree outside, whose entries have the same names.
func TestTreeFollowsNoSymlink(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root, outside := layout(t)
		d := open(root)
		var st unix.Stat_t
		var tr Tree
		if err := d.OpenTree(&tr, "a"); err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{".", "b", "b/c", "b/c/f", "b/c/sub/g"} {
			if err := tr.Lstat(rel, &st); err != nil {
				t.Errorf("Lstat(%s) of a real tree: %v", rel, err)
			}
		}
		tr.Close()
		for _, rel := range []string{"../a", "b/../b", "b//c", "b/c/..", ""} {
			d.OpenTree(&tr, "a")
			if err := tr.Lstat(rel, &st); err == nil {
				t.Errorf("Lstat(%q) was resolved", rel)
			}
			tr.Close()
		}
		// Each link in turn: the root, a middle directory, the last one.
		for _, link := range []string{"a", "a/b", "a/b/c"} {
			p := filepath.Join(root, link)
			os.Rename(p, p+".real")
			os.Symlink(filepath.Join(outside, link), p)
			err := d.OpenTree(&tr, "a")
			if link == "a" {
				if err == nil {
					t.Errorf("OpenTree followed a symlink at its root")
					tr.Close()
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				for _, rel := range []string{"b/c/f", "b/c/sub/g"} {
					if err := tr.Lstat(rel, &st); err == nil {
						t.Errorf("%s a symlink: Lstat(%s) followed it", link, rel)
					}
				}
				last := link[len("a/"):]
				if err := tr.Lstat(last, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
					t.Errorf("%s a symlink: Lstat(%s) = %v, mode %o; want the link itself", link, last, err, st.Mode)
				}
				tr.Close()
			}
			os.Remove(p)
			os.Rename(p+".real", p)
		}
	})
}

// The rule: a Tree never follows a link swapped in for one of its
// directories after it looked there, whoever the writer: another uid, or
// root itself (a build script run as root in a container writes the shared
// registry too, and root writes past any mode). Each case swaps a
// directory already looked at for a link to the decoy tree; the next stamp
// below it may come from the real directory (held open) or fail, never from
// the decoy. A Tree that let the kernel resolve paths through directories
// only root could write (one fstatat instead of an open each) failed the
// first case.
func TestTreeFollowsNoLinkSwappedInAfterItsLook(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a directory of another uid")
	}
	for _, c := range []struct {
		name, dir, swap, deep string
		mode                  os.FileMode
		uid                   int
	}{
		{"middle of root, mode 0755", "a/b", "a/b/c", "b/c/f", 0o755, 0},
		{"root of root, mode 0755", "a", "a/b", "b/c", 0o755, 0},
		{"middle writable by group", "a/b", "a/b/c", "b/c/f", 0o775, 0},
		{"middle of another uid", "a/b", "a/b/c", "b/c/f", 0o755, 65534},
		{"root writable by others", "a", "a/b", "b/c", 0o777, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			modes(t, func(t *testing.T, open func(string) *Dir) {
				root, outside := layout(t)
				p := filepath.Join(root, c.dir)
				if err := os.Chmod(p, c.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(p, c.uid, 0); err != nil {
					t.Fatal(err)
				}
				var tr Tree
				if err := open(root).OpenTree(&tr, "a"); err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				var st unix.Stat_t
				for _, rel := range []string{".", "b", "b/c"} {
					if err := tr.Lstat(rel, &st); err != nil {
						t.Fatalf("Lstat(%s) of a real tree: %v", rel, err)
					}
				}
				s := filepath.Join(root, c.swap)
				if err := os.Rename(s, s+".real"); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(outside, c.swap), s); err != nil {
					t.Fatal(err)
				}
				var decoy unix.Stat_t
				if err := unix.Lstat(filepath.Join(outside, "a", c.deep), &decoy); err != nil {
					t.Fatal(err)
				}
				if err := tr.Lstat(c.deep, &st); err == nil && st.Ino == decoy.Ino && st.Dev == decoy.Dev {
					t.Errorf("%s swapped for a link after the look: Lstat(%s) followed it", c.swap, c.deep)
				}
			})
		})
	}
}
