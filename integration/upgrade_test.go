package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// previousRelease is the last commit of the 0.2 line on main: the shim a
// fleet still runs on part of its runners while the rest upgrade.
const previousRelease = "71fad9a"

// buildPrevious builds cargo and cargo-shim of previousRelease from this
// repository's history into a directory of their own, or skips the test
// when that history is not here (a shallow clone, an exported tree).
func buildPrevious(t *testing.T) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout, so the previous release (%s) cannot be built: %v", previousRelease, err)
	}
	repo := strings.TrimSpace(string(top))
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", previousRelease+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s (the previous release) is not in this clone's history (shallow?): %v", previousRelease, err)
	}
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	// git archive reads the repository and writes only into src: no
	// worktree is registered in the repository.
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, previousRelease, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", previousRelease, err, out)
	}
	bin := filepath.Join(filepath.Dir(binDir), "previous")
	for _, c := range []string{"cargo", "cargo-shim"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, c), "./cmd/"+c)
		build.Dir = src
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s of %s: %v\n%s", c, previousRelease, err, out)
		}
	}
	return bin
}

// extractionInodes maps each extraction of the fixture to its directory's
// inode: a valid extraction keeps its inode unless something replaced it.
func extractionInodes(w *World) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range fixtureCrates {
		if fi, err := os.Lstat(w.Extraction(c.Dir())); err == nil {
			out[c.Dir()] = fi.Sys().(*syscall.Stat_t).Ino
		}
	}
	return out
}

// The rule: two versions of the shim on one registry, as during a rolling
// upgrade, never make a build fail and never delete a valid extraction:
// each reads or ignores the other's records, both take the same per-crate
// locks and point their homes' cargo lock at the same file. Runners of the
// previous release and of this one start at once, cold, then warm with
// damage between rounds, next to both versions' `cargo-shim repair`.
func TestMixedVersionsShareARegistry(t *testing.T) {
	prev := buildPrevious(t)
	w := NewWorld(t)
	w.Lock()
	k := runnerCount()
	start := func(n int, dir string) *Proc {
		bin := binDir
		if n%2 == 1 {
			bin = prev
		}
		home := w.Home()
		return loopback.Start(filepath.Join(bin, "cargo"), dir, loopback.CargoEnv(home, bin), []string{"build"})
	}
	works := make([]string, k)
	for n := range works {
		works[n] = w.Workspace(n)
	}
	rng := rand.New(rand.NewPCG(21, 5))
	for round := 0; round < 4; round++ {
		var damaged string
		var before map[string]uint64
		if round > 0 {
			before = extractionInodes(w)
			damaged = damageOne(t, w, rng)
		}
		procs := make([]*Proc, k)
		for n := range procs {
			procs[n] = start(n+round, works[n])
		}
		var admins []*Proc
		if round > 0 {
			for _, bin := range []string{binDir, prev} {
				cmd := loopback.Start(filepath.Join(bin, "cargo-shim"), w.Root, append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared), []string{"repair"})
				admins = append(admins, cmd)
			}
		}
		for n, p := range procs {
			version := "new"
			if (n+round)%2 == 1 {
				version = previousRelease
			}
			if r := p.Wait(); r.Code != 0 {
				t.Errorf("round %d (damaged: %s): runner %d (%s) failed: %s", round, damaged, n, version, r)
			}
		}
		for _, a := range admins {
			a.Wait() // exit 1 is a crate left to the next run: the builds say whether that hurt
		}
		if round == 0 {
			w.Regdir = w.findRegdir()
			continue
		}
		for dir, ino := range before {
			if now := extractionInodes(w)[dir]; dir != damaged && now != ino {
				t.Errorf("round %d: %s was valid and was replaced or removed (damaged was %s)", round, dir, damaged)
			}
		}
	}
	assertNoFakeExtractions(t, w)
	// Deterministic, where the races above are not: a build of either
	// release pins its crates against the other release's gc.
	for n, pair := range [][2]string{{prev, binDir}, {binDir, prev}} {
		assertPinnedAcrossReleases(t, w, 100+n, pair[0], pair[1])
	}
	// The last word is this release's: what the previous one left, this
	// one reads and finishes.
	w.MustCargo(w.Home(), true, "build")
	w.AssertHealthy()
}

// damageOne damages one random fixture crate as damageRandomly does, and
// names it (a damaged crate may be replaced; no other may).
func damageOne(t *testing.T, w *World, rng *rand.Rand) string {
	c := fixtureCrates[rng.IntN(len(fixtureCrates))]
	ext := w.Extraction(c.Dir())
	switch kind := rng.IntN(4); kind {
	case 0:
		rm(t, filepath.Join(ext, "Cargo.toml"))
	case 1:
		rm(t, ext)
	case 2:
		writeFile(t, filepath.Join(ext, ".cargo-ok"), "")
	case 3:
		if fi, err := os.Stat(w.Tarball(c.Dir())); err == nil {
			truncate(t, w.Tarball(c.Dir()), fi.Size()/2)
		}
	}
	return fmt.Sprint(c.Dir())
}

// assertPinnedAcrossReleases holds a build of the release in buildBin (in
// workspace copy n) mid-compile and runs `cargo-shim gc --max-age 0s` of the release in
// gcBin: every crate the build uses must be kept as busy, and the build
// must pass.
func assertPinnedAcrossReleases(t *testing.T, w *World, n int, buildBin, gcBin string) {
	t.Helper()
	work := w.Workspace(n)
	writeFile(t, filepath.Join(work, "build.rs"), gateBuildRS)
	gate := t.TempDir()
	held := loopback.Start(filepath.Join(buildBin, "cargo"), work, loopback.CargoEnv(w.Home(), buildBin, "SHIM_TEST_GATE="+gate), []string{"build"})
	waitFor(t, "the held build's script to start", 5*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(gate, "started"))
		return err == nil
	})
	gc := loopback.Start(filepath.Join(gcBin, "cargo-shim"), w.Root, append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared), []string{"gc", "--max-age", "0s", "--json"}).Wait()
	os.WriteFile(filepath.Join(gate, "go"), nil, 0o644)
	if r := held.Wait(); r.Code != 0 {
		t.Errorf("build by %s held while %s ran gc: %s", buildBin, gcBin, r)
	}
	rep := decode[admin.GCReport](t, gc)
	if len(rep.Removed) != 0 || len(rep.Busy) != len(fixtureCrates) {
		t.Errorf("gc of %s while a build of %s holds every crate: removed %d, busy %d, want 0 and %d: %s", gcBin, buildBin, len(rep.Removed), len(rep.Busy), len(fixtureCrates), gc)
	}
}
