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
