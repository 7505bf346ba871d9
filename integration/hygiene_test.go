package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// A Cargo.lock naming crates that were never downloaded leaves their lock
// files behind (cold crates are pinned where cargo would put them); a crate
// removed from the registry leaves its lock file and state record; a
// re-created registry leaves plan records nothing will trust again. gc
// removes all of them, except a lock a build holds.
func TestGCRemovesWhatNoLongerBelongsToTheRegistry(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	work := w.Workspace(1)
	lock, _ := os.ReadFile(filepath.Join(work, "Cargo.lock"))
	src := regexpFind(t, string(lock), `source = "([^"]+)"`)
	var ghosts strings.Builder
	const n = 60
	for k := 0; k < n; k++ {
		fmt.Fprintf(&ghosts, "\n[[package]]\nname = \"csi8-ghost\"\nversion = \"1.0.%d\"\nsource = %q\nchecksum = \"%064d\"\n", k, src, k)
	}
	writeFile(t, filepath.Join(work, "Cargo.lock"), string(lock)+ghosts.String())
	if r := w.Start(work, home, true, []string{"build"}).Wait(); r.Code != 0 {
		t.Fatalf("build with never-downloaded crates in Cargo.lock: %s", r)
	}
	locks := filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir)
	if _, err := os.Stat(filepath.Join(locks, "csi8-ghost-1.0.0.lock")); err != nil {
		t.Fatalf("the cold crates were not pinned, nothing to collect: %v", err)
	}
	held, err := lockfile.Try(filepath.Join(locks, "csi8-ghost-1.0.7.lock"), lockfile.Shared)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	rm(t, w.Extraction("flat-1.0.0"))
	rm(t, w.Tarball("flat-1.0.0"))
	os.Mkdir(filepath.Join(w.Shared, "src", "csi8-new-regdir"), 0o755) // every plan record is now outdated

	dry := decode[admin.GCReport](t, w.Admin("gc", "--max-age", "720h", "--dry-run", "--json"))
	rep := decode[admin.GCReport](t, w.Admin("gc", "--max-age", "720h", "--json"))
	if rep.LockFiles != n || rep.StateRecords != 1 || rep.PlanRecords < 1 || len(rep.Removed) != 0 {
		t.Errorf("gc removed %d lock files (want %d: the ghosts but the held one, and flat's), %d state records (want 1), %d plan records (want >= 1), %d crates (want 0)",
			rep.LockFiles, n, rep.StateRecords, rep.PlanRecords, len(rep.Removed))
	}
	if dry.LockFiles != n+1 || dry.StateRecords != 1 {
		t.Errorf("dry run: %d lock files (want %d: it cannot know which is held), %d state records", dry.LockFiles, n+1, dry.StateRecords)
	}
	ents, _ := os.ReadDir(locks)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if len(left) != len(fixtureCrates) || !strings.Contains(strings.Join(left, " "), "csi8-ghost-1.0.7.lock") {
		t.Errorf("lock files left: %v, want the held ghost's and those of the %d crates still there", left, len(fixtureCrates)-1)
	}
	if _, err := os.Stat(filepath.Join(w.Shared, ".cargo-shim", "state", w.Regdir, "flat-1.0.0")); err == nil {
		t.Error("the state record of a removed crate is left")
	}
	w.MustCargo(home, true, "build")
}

// A crate no build uses, repaired again and again before the trash is
// emptied, keeps one copy in the trash, not one per repair. (Beside builds
// that pin it, its old copies stay until their pins end: fleet.md.)
func TestTrashStaysBoundedUnderRepeatedRepairs(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	trash := filepath.Join(w.Shared, ".cargo-shim", "trash")
	lock := filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir, "deep-mods-2.1.0.lock")
	for k := 0; k < 4; k++ {
		// The build before has ended; its holder lets go just after.
		exclusiveOnceFree(t, lock).Release()
		rm(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src", "lib.rs"))
		if r := w.MustCargo(home, true, "build"); !strings.Contains(r.Stderr, "Repairing deep-mods") {
			t.Fatalf("no repair: %s", r)
		}
		ents, _ := os.ReadDir(trash)
		copies := 0
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), w.Regdir+".deep-mods-2.1.0.") {
				copies++
			}
		}
		if copies > 1 {
			t.Fatalf("after %d repairs the trash holds %d copies of the crate", k+1, copies)
		}
	}
}

func regexpFind(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	return m[1]
}

// The first build on an empty registry cannot pin its crates under a regdir
// (cargo has made none yet): it pins the registry's cold lock, and gc removes
// nothing while it runs, whatever --max-age says.
func TestGCKeepsCratesOfABuildOnAnEmptyRegistry(t *testing.T) {
	w := NewWorld(t)
	w.Lock()
	held, open := w.StartHeldBuild()
	w.Regdir = w.findRegdir()
	r := w.Admin("gc", "--max-age", "0s", "--json")
	rep := decode[admin.GCReport](t, r)
	if !rep.ColdBuild || len(rep.Removed) != 0 {
		t.Errorf("gc during the first build on an empty registry: cold_build_running=%v, removed %d crates: %s", rep.ColdBuild, len(rep.Removed), r)
	}
	for _, c := range fixtureCrates {
		if _, err := os.Stat(filepath.Join(w.Extraction(c.Dir()), ".cargo-ok")); err != nil {
			t.Errorf("%s, in use by the build, is gone: %v", c.Dir(), err)
		}
	}
	open()
	if r := held.Wait(); r.Code != 0 {
		t.Fatalf("the build: %s", r)
	}
	// The holder lets go once it has seen cargo exit.
	exclusiveOnceFree(t, filepath.Join(w.Shared, ".cargo-shim", "locks", "cold.lock")).Release()
	rep = decode[admin.GCReport](t, w.Admin("gc", "--max-age", "0s", "--json"))
	if rep.ColdBuild || len(rep.Removed) != len(fixtureCrates) {
		t.Errorf("gc after the build: cold_build_running=%v, removed %d crates, want %d", rep.ColdBuild, len(rep.Removed), len(fixtureCrates))
	}
}
