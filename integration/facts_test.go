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
)

// These tests pin the facts of cargo that cargo-shim relies on (docs/DESIGN.md),
// against the cargo on this machine: if cargo changes, they fail here first.

func listing(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		fi, _ := d.Info()
		switch {
		case d.Type().IsRegular() && rel == ".cargo-ok":
			data, _ := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s %q", rel, data))
		case d.Type().IsRegular():
			lines = append(lines, fmt.Sprintf("%s %04o %d %d", rel, fi.Mode().Perm(), fi.Size(), fi.ModTime().Unix()))
		case d.IsDir():
			lines = append(lines, fmt.Sprintf("%s/ %04o", rel, fi.Mode().Perm()))
		default:
			lines = append(lines, rel+" "+fi.Mode().String())
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Section 1: the marker is exactly {"v":1}, modes are tar mode & ~umask,
// tar mtimes are kept. The shim's own extraction must be indistinguishable.
func TestFactShimExtractsLikeCargo(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	w := NewWorld(t)
	w.Warm()
	byCargo := map[string]string{}
	for _, c := range fixtureCrates {
		byCargo[c.Dir()] = listing(t, w.Extraction(c.Dir()))
		if !strings.Contains(byCargo[c.Dir()], `.cargo-ok "{\"v\":1}"`) {
			t.Fatalf("cargo's marker for %s is not {\"v\":1}:\n%s", c.Dir(), byCargo[c.Dir()])
		}
		rm(t, w.Extraction(c.Dir()))
	}
	r := w.MustCargo(w.Home(), true, "build", "--offline")
	if n := strings.Count(r.Stderr, "Extracting"); n != len(fixtureCrates) {
		t.Fatalf("the shim extracted %d crates, want %d:\n%s", n, len(fixtureCrates), r.Stderr)
	}
	for _, c := range fixtureCrates {
		if got := listing(t, w.Extraction(c.Dir())); got != byCargo[c.Dir()] {
			t.Errorf("%s: the shim's extraction differs from cargo's:\ncargo:\n%s\nshim:\n%s", c.Dir(), byCargo[c.Dir()], got)
		}
	}
}

// Section 1: rebuild detection ignores mtimes under the registry, so a
// re-extraction alone does not make cargo recompile what it compiled
// before. This is why a repair is journaled and the shim removes the
// fingerprints itself (TestRepairReachesTargetDir): here the repair is
// cargo-shim's, and the build after it plain cargo's, in the same target
// dir, which therefore keeps what it compiled.
func TestFactRepairDoesNotForceRebuild(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	if a := w.Admin("repair"); !strings.Contains(a.Stdout+a.Stderr, "flat") {
		t.Fatalf("no repair of flat:\n%s%s", a.Stdout, a.Stderr)
	}
	if _, err := os.Stat(filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")); err != nil {
		t.Fatalf("repair left lib.rs missing: %v", err)
	}
	r := w.MustCargo(home, false, "build")
	if strings.Contains(r.Stderr, "Compiling") {
		t.Fatalf("plain cargo recompiled after a re-extraction (cargo now looks at registry mtimes: the journal may be unneeded):\n%s", r.Stderr)
	}
}

// Section 4: cargo's locks are $CARGO_HOME/.package-cache{,-mutate}; the
// shim points them into the shared registry's root, and cargo follows the
// links.
func TestFactCargoLockFilesAreShared(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	for _, name := range []string{".package-cache", ".package-cache-mutate"} {
		// The link names the file as the runner sees it, inside its
		// registry mount; the file itself is in the shared directory.
		target, err := os.Readlink(filepath.Join(home, name))
		if err != nil || target != filepath.Join(home, "registry", ".cargo-shim-"+name[1:]) {
			t.Errorf("%s -> %q (%v), want a link into the registry", name, target, err)
		}
		if _, err := os.Stat(filepath.Join(w.Shared, ".cargo-shim-"+name[1:])); err != nil {
			t.Errorf("shared %s: %v", name, err)
		}
	}
}
