package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// modes lists everything under the registry (but the shim's own directory)
// as "rel kind mode group", mode with the setgid bit.
func modes(t *testing.T, root string, gid int) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".cargo-shim" {
			return filepath.SkipDir
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		kind := "file"
		switch {
		case d.IsDir():
			kind = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			kind = "link"
		}
		group := "other-group"
		if int(st.Gid) == gid {
			group = "group"
		}
		out[rel] = fmt.Sprintf("%s %04o %s", kind, st.Mode&0o7777, group)
		return nil
	})
	return out
}

func dumpModes(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, k+" "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// What cargo 1.95 does with modes in a registry whose directories are setgid
// (the group-shared layout), run as root:
//   - every directory it makes itself (regdirs, index cache dirs, extraction
//     dirs of a `cargo package` tarball, which has no directory entries) is
//     0777 & ~umask, and inherits the setgid bit;
//   - the .crate, the index cache files and .cargo-ok are 0666 & ~umask;
//   - extracted files are tar mode & ~umask;
//   - everything gets the directory's group, although root made it;
//   - but a directory that is a tarball entry is chmod'ed to its tar mode &
//     ~umask, which drops the setgid bit: what is under it gets root's group.
//     (`cargo package` writes no directory entries; the fixture crates do.)
//
// So with umask 0022 nothing cargo makes is group-writable, and with 0002
// everything but tar-entry directories is: the shim clears the group bits
// of the umask for cargo on a group-shared registry.
func TestFactCargoCreatesWithTheUmask(t *testing.T) {
	_, gid := sharedGroup(t)
	for _, umask := range []int{0o022, 0o002} {
		t.Run(fmt.Sprintf("umask%04o", umask), func(t *testing.T) {
			w := NewWorld(t)
			pkg := loopback.CrateSpec{Name: "pkgstyle", Version: "0.1.0", NoDirEntries: true, Files: map[string]string{
				"src/lib.rs": "pub mod inner;\n", "src/inner/mod.rs": "pub fn f() {}\n",
			}}
			w.Reg.Publish(pkg)
			var deep loopback.CrateSpec
			for _, c := range fixtureCrates {
				if c.Name == "deep-mods" {
					deep = c
				}
			}
			work := filepath.Join(w.Root, "pkgwork")
			if err := loopback.WriteWorkspace(work, []loopback.CrateSpec{pkg, deep}, "fn main() {}\n"); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(w.Shared, 0, gid); err != nil {
				t.Fatal(err)
			}
			os.Chmod(w.Shared, 0o775|os.ModeSetgid)
			home := w.Home()
			old := syscall.Umask(umask)
			r := w.Start(work, home, false, []string{"fetch"}).Wait()
			syscall.Umask(old)
			if r.Code != 0 {
				t.Fatalf("cargo fetch: %s", r)
			}
			got := modes(t, w.Shared, gid)
			w.Regdir = w.findRegdir()
			madeDir := fmt.Sprintf("dir %04o group", 0o2777&^umask)
			made := fmt.Sprintf("file %04o group", 0o666&^umask)
			extracted := fmt.Sprintf("file %04o group", 0o644&^umask)
			tarDir := fmt.Sprintf("dir %04o group", 0o755&^umask)
			want := map[string]string{
				"src": madeDir, "cache": madeDir, "index": madeDir,
				filepath.Join("src", w.Regdir):                                             madeDir,
				filepath.Join("cache", w.Regdir, "pkgstyle-0.1.0.crate"):                   made,
				filepath.Join("cache", w.Regdir, "deep-mods-2.1.0.crate"):                  made,
				filepath.Join("src", w.Regdir, "pkgstyle-0.1.0"):                           madeDir,
				filepath.Join("src", w.Regdir, "pkgstyle-0.1.0", "src"):                    madeDir,
				filepath.Join("src", w.Regdir, "pkgstyle-0.1.0", ".cargo-ok"):              made,
				filepath.Join("src", w.Regdir, "pkgstyle-0.1.0", "src", "inner", "mod.rs"): extracted,
				filepath.Join("src", w.Regdir, "deep-mods-2.1.0"):                          madeDir,
				filepath.Join("src", w.Regdir, "deep-mods-2.1.0", "src"):                   tarDir,
				filepath.Join("src", w.Regdir, "deep-mods-2.1.0", "src", "outer", "inner"): strings.Replace(tarDir, "group", "other-group", 1),
				filepath.Join("src", w.Regdir, "deep-mods-2.1.0", "src", "lib.rs"):         strings.Replace(extracted, "group", "other-group", 1),
			}
			for rel, w := range want {
				if got[rel] != w {
					t.Errorf("%s: %q, want %q", rel, got[rel], w)
				}
			}
			for rel, m := range got {
				if strings.HasPrefix(rel, filepath.Join("index", w.Regdir, ".cache")+"/") && strings.HasPrefix(m, "file") && m != made {
					t.Errorf("index cache file %s: %q, want %q", rel, m, made)
				}
				underTarDir := strings.HasPrefix(rel, filepath.Join("src", w.Regdir, "deep-mods-2.1.0", "src")+"/")
				if !strings.HasSuffix(m, " group") && !underTarDir {
					t.Errorf("%s does not have the registry's group: %s", rel, m)
				}
			}
			if t.Failed() {
				t.Logf("cargo with umask %04o made:\n%s", umask, dumpModes(got))
			}
		})
	}
}
