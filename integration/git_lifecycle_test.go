package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// gitEvents are what an admin does to a shared git/ directory while the
// runners' homes persist.
var gitEvents = []struct {
	name string
	do   func(t testing.TB, w *GitWorld)
}{
	{"contents-wiped", func(t testing.TB, w *GitWorld) { wipeContents(t, w.Shared) }},
	{"shim-dir-removed", func(t testing.TB, w *GitWorld) { mustRemoveAll(t, filepath.Join(w.Shared, ".cargo-shim")) }},
	{"dbs-removed-shim-dir-kept", func(t testing.TB, w *GitWorld) { mustRemoveAll(t, filepath.Join(w.Shared, "db")) }},
	{"dir-recreated", func(t testing.TB, w *GitWorld) {
		mustRemoveAll(t, w.Shared)
		if err := os.Mkdir(w.Shared, 0o755); err != nil {
			t.Fatal(err)
		}
	}},
}

// Rule: whatever an admin removes of the shared git/ (its contents, the
// shim's git/.cargo-shim with its locks and stamp records, the dbs alone,
// the directory itself), plain cargo and the shim keep passing in homes
// the shim has used: nothing of the shim's is outside git/, and a stamp
// record or lock file that outlived what it described is never trusted.
func TestGitHomesOutliveTheirGitDir(t *testing.T) {
	for _, ev := range gitEvents {
		t.Run(ev.name, func(t *testing.T) {
			w := NewGitWorld(t)
			homes := []string{w.Home(), w.Home()}
			works := []string{w.Workspace(), w.Workspace()}
			for i := range homes {
				if r := w.Build(works[i], homes[i], true).Wait(); r.Code != 0 {
					t.Fatalf("warm-up: %s", r)
				}
			}
			for _, step := range []struct {
				home int
				shim bool
			}{{0, false}, {1, true}, {0, true}, {1, false}} {
				ev.do(t, w)
				if r := w.Build(works[step.home], homes[step.home], step.shim).Wait(); r.Code != 0 {
					t.Errorf("%s, then home %d shim=%v: %s", ev.name, step.home, step.shim, r)
				}
			}
		})
	}
}

// Rule: cargo-shim uninstall names the shim's git/.cargo-shim (locks,
// stamp records) and leaves it; removed by hand as the docs say, plain
// cargo and the shim still pass.
func TestGitUninstallNamesShimDir(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	r := loopback.Start(filepath.Join(binDir, "cargo-shim"), work, loopback.CargoEnv(home, ""), []string{"uninstall", "--json"}).Wait()
	rep := decode[admin.UninstallReport](t, r)
	want := filepath.Join(home, "git", ".cargo-shim")
	if r.Code != 0 || !slices.Contains(rep.ShimDirs, want) {
		t.Fatalf("uninstall does not name %s: %s", want, r)
	}
	if _, err := os.Lstat(want); err != nil {
		t.Fatalf("uninstall removed %s: %v", want, err)
	}
	mustRemoveAll(t, filepath.Join(w.Shared, ".cargo-shim"))
	for _, shim := range []bool{false, true} {
		if r := w.Build(work, home, shim).Wait(); r.Code != 0 {
			t.Errorf("after git/.cargo-shim was removed, shim=%v: %s", shim, r)
		}
	}
}
