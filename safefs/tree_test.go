package safefs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A Tree (the warm check's stamps) never follows a symlink: not at its
// root, not at a directory on the way to a deeper path, not at the last
// component; and ".." or an empty component is refused. Each symlink
// points at the decoy tree outside, whose entries have the same names.
// Both with the directory seen sealed (the root is then looked up by name,
// not opened) and not.
func TestTreeFollowsNoSymlink(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) { treeFollowsNoSymlink(t, sealed) })
	}
}

func treeFollowsNoSymlink(t *testing.T, sealed bool) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root, outside := layout(t)
		d := open(root)
		if sealed && !d.SeeSealed() {
			t.Fatal("a directory of this uid, mode 0755, not seen sealed")
		}
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
			switch {
			case link == "a" && sealed:
				// Nothing opened yet: the root's look-up shows the link.
				if err != nil {
					t.Fatal(err)
				}
				if err := tr.Lstat(".", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
					t.Errorf("root a symlink: Lstat(.) = %v, mode %o; want the link itself", err, st.Mode)
				}
				for _, rel := range []string{"b", "b/c/f"} {
					if err := tr.Lstat(rel, &st); err == nil {
						t.Errorf("root a symlink: Lstat(%s) followed it", rel)
					}
				}
				tr.Close()
			case link == "a":
				if err == nil {
					t.Errorf("OpenTree followed a symlink at its root")
					tr.Close()
				}
			default:
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

// The rule: a Tree resolves a path in one lookup only through directories
// it has seen sealed (writable by none but the running uid and root, as
// the threat model believes); below a directory another uid can write, a
// symlink swapped in after the Tree looked is still not followed. Each case
// opens one directory to others, looks at the tree, then swaps what is
// below that directory for a link to the decoy, as an attacker racing the
// check would.
func TestTreeTrustsOnlySealedDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a directory of another uid")
	}
	for _, c := range []struct {
		name, open, swap, deep string
		mode                   os.FileMode
		uid                    int
	}{
		{"its directory writable by others", ".", "a", "b", 0o777, 0},
		{"root writable by others", "a", "a/b", "b/c", 0o777, 0},
		{"root of another uid", "a", "a/b", "b/c", 0o755, 65534},
		{"middle writable by group", "a/b", "a/b/c", "b/c/f", 0o775, 0},
		{"middle of another uid", "a/b", "a/b/c", "b/c/f", 0o755, 65534},
	} {
		t.Run(c.name, func(t *testing.T) {
			modes(t, func(t *testing.T, open func(string) *Dir) {
				root, outside := layout(t)
				p := filepath.Join(root, c.open)
				if err := os.Chmod(p, c.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(p, c.uid, 0); err != nil {
					t.Fatal(err)
				}
				d := open(root)
				if d.SeeSealed() != (c.open != ".") {
					t.Fatalf("SeeSealed of a directory of mode %o, uid %d: %v", c.mode, c.uid, d.sealed)
				}
				var tr Tree
				if err := d.OpenTree(&tr, "a"); err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				var st unix.Stat_t
				for _, rel := range []string{".", "b", "b/c", "b/c/f"} {
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
				// A directory the Tree already holds open may still answer
				// (it is the real one, moved); the decoy never may.
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
