package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The rule: a repair reaches the target dirs that compiled the damage. Cargo
// never compares the mtimes of registry sources, so what a target dir
// compiled from a damaged extraction stays "fresh" after the repair; the
// next build through the shim in that dir must rebuild the repaired crate
// (and what depends on it) and produce the program a clean build makes.
// Each damage here compiles: a build into the target dir succeeds in
// compiling the damaged crate.
func TestRepairReachesTargetDir(t *testing.T) {
	kinds := []struct {
		name   string
		crate  string
		damage func(t *testing.T, w *World)
		runEnv []string // for the repairing run: what it needs to see the damage
	}{
		// Rewritten in place: no directory changes, the per-run check does
		// not see it once the state is recorded, so even a build through
		// the shim compiles it.
		{name: "lib-truncated-in-place", crate: "flat", runEnv: []string{"CARGO_SHIM_VERIFY=files"},
			damage: func(t *testing.T, w *World) { truncate(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"), 0) }},
		// The per-run check sees this one: only a build that did not go
		// through the shim compiles it (an unprotected run, an old image).
		{name: "autodiscovered-build-rs-removed", crate: "autobuild",
			damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("autobuild-0.2.0"), "build.rs")) }},
	}
	for _, k := range kinds {
		for _, by := range []string{"run", "admin"} {
			t.Run(k.name+"/repaired-by-"+by, func(t *testing.T) {
				w := NewWorld(t)
				w.Warm()
				// A clean run records the state, as on a registry in use.
				w.MustCargo(w.Home(), true, "build")
				k.damage(t, w)

				// The build that compiles the damage into T (home/target) is
				// plain cargo: whether a shim's first run after a fresh
				// record checks in full depends on the clock (the racy
				// window), and the damage must reach T every time.
				home := w.Home()
				first := w.Cargo(home, false, []string{"build"})
				if first.Code == 0 {
					if got := w.RunApp(home); got == wantApp {
						t.Fatalf("the damaged crate compiled right; the damage no longer reaches a target dir: %s", first)
					}
				}

				switch by {
				case "run": // another home's run through the shim
					other := w.Home()
					r := w.Cargo(other, true, []string{"build"}, k.runEnv...)
					if r.Code != 0 || !strings.Contains(r.Stderr, "Repairing "+k.crate) {
						t.Fatalf("the other home's run did not repair %s: %s", k.crate, r)
					}
				case "admin":
					if r := w.Admin("repair"); r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, k.crate) {
						t.Fatalf("cargo-shim repair did not repair %s: %s", k.crate, r)
					}
				}
				w.AssertHealthy()

				again := w.Cargo(home, true, []string{"build"})
				if again.Code != 0 {
					t.Fatalf("the build in the target dir that compiled the damage failed after the repair: %s", again)
				}
				if !strings.Contains(again.Stderr, "Rebuilding "+k.crate) {
					t.Errorf("no Rebuilding line for %s:\n%s", k.crate, again.Stderr)
				}
				if got := w.RunApp(home); got != wantApp {
					t.Fatalf("after the repair the target dir built a program printing %q, a clean build prints %q", got, wantApp)
				}
				// The dir is now up to date: the next build compiles nothing.
				warm := w.Cargo(home, true, []string{"build"})
				if warm.Code != 0 || strings.Contains(warm.Stderr, "Compiling") || strings.Contains(warm.Stderr, "Rebuilding") {
					t.Fatalf("the build after compiled again: %s", warm)
				}
				if _, err := os.Stat(filepath.Join(home, "target", ".cargo-shim-repairs")); err != nil {
					t.Errorf("no marker in the target dir: %v", err)
				}
			})
		}
	}
}
