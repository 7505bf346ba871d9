package integration

import (
	"bufio"
	"fmt"
	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// runnerCount is K, the number of runners started at once.
func runnerCount() int {
	if os.Getenv("CARGO_SHIM_CHAOS") == "long" {
		return 6
	}
	return 4
}

func TestColdStartManyRunners(t *testing.T) {
	k := runnerCount()
	t.Logf("runners reach the shared registry through a bind mount: %v (else a symlink)", loopback.BindMounts)
	w := NewWorld(t)
	w.Lock()
	procs := make([]*Proc, k)
	for n := range procs {
		procs[n] = w.Start(w.Workspace(n), w.Home(), true, []string{"build"})
	}
	for n, p := range procs {
		if r := p.Wait(); r.Code != 0 {
			t.Errorf("runner %d of %d failed on a cold shared registry: %s", n, k, r)
		}
	}
	w.Regdir = w.findRegdir()
	for _, c := range fixtureCrates {
		if got := w.Reg.Downloads()[c.Dir()]; got != 1 {
			t.Errorf("%s downloaded %d times by %d cold runners, want exactly 1", c.Dir(), got, k)
		}
	}
	w.AssertHealthy()
}

// Why plain cargo races there: its package-cache lock lives in each
// CARGO_HOME root, so runners that share only registry/ never wait for each
// other. With one home's lock held exclusively, a cargo of another home
// still downloads and unpacks into the shared registry. (How often the race
// then breaks a build is counted by the demo, not asserted: it is a race.)
func TestPlainCargoLockDoesNotSpanHomes(t *testing.T) {
	w := NewWorld(t)
	w.Lock()
	l, err := lockfile.Try(filepath.Join(w.Home(), ".package-cache"), lockfile.Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if r := w.Cargo(w.Home(), false, []string{"fetch"}); r.Code != 0 {
		t.Fatalf("plain cargo of another home: %s", r)
	}
	if len(w.Reg.Downloads()) == 0 {
		t.Fatal("nothing was downloaded while another home's package-cache lock was held")
	}
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

const gateBuildRS = `fn main() {
    println!("cargo:rerun-if-env-changed=SHIM_TEST_GATE");
    if let Ok(dir) = std::env::var("SHIM_TEST_GATE") {
        std::fs::write(format!("{}/started", dir), "").unwrap();
        while !std::path::Path::new(&format!("{}/go", dir)).exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
`

// StartHeldBuild starts a build through the shim whose own build script
// waits (the build is held mid-compile, its crates pinned) until open is
// called.
func (w *World) StartHeldBuild() (held *Proc, open func()) {
	w.t.Helper()
	writeFile(w.t, filepath.Join(w.Work, "build.rs"), gateBuildRS)
	gate := filepath.Join(w.Root, "gate")
	os.MkdirAll(gate, 0o755)
	held = w.Start(w.Work, w.Home(), true, []string{"build"}, "SHIM_TEST_GATE="+gate)
	waitFor(w.t, "the build script to start", 2*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(gate, "started"))
		return err == nil
	})
	return held, func() { os.WriteFile(filepath.Join(gate, "go"), nil, 0o644) }
}

// While a build runs, every crate it uses is locked shared: an exclusive
// try-lock (what a repair or gc takes) fails until that cargo exits. Another
// build of the same crates does not wait for it.
func TestRunningBuildIsUntouchable(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	held, open := w.StartHeldBuild()
	locks := filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir)
	for _, c := range fixtureCrates {
		if _, err := lockfile.Try(filepath.Join(locks, c.Dir()+".lock"), lockfile.Exclusive); !lockfile.IsBusy(err) {
			t.Errorf("%s: exclusive try-lock during the build: got %v, want busy", c.Dir(), err)
		}
	}
	// A second runner using the same crates runs to the end meanwhile.
	other := w.Start(w.Workspace(1), w.Home(), true, []string{"build"})
	if r := other.Wait(); r.Code != 0 {
		t.Fatalf("second runner: %s", r)
	}
	open()
	if r := held.Wait(); r.Code != 0 {
		t.Fatalf("held build: %s", r)
	}
	waitFor(t, "the locks to be released after cargo exited", 10*time.Second, func() bool {
		for _, c := range fixtureCrates {
			l, err := lockfile.Try(filepath.Join(locks, c.Dir()+".lock"), lockfile.Exclusive)
			if err != nil {
				return false
			}
			l.Release()
		}
		return true
	})
}

// chaosStats is what TestChaosKilledRunners reports.
type chaosStats struct {
	rounds, started, killed, killedFailed, survivorsFailed, laterRuns, laterFailed, repairs int
}

// Runners are SIGKILLed (whole process group) at random moments: during
// downloads (the registry slows them down), extraction, repair and builds.
// Every run after that must pass, alone and K at once, and the registry must
// end healthy. Seeds are fixed: a failure names its seed and round.
func TestChaosKilledRunners(t *testing.T) {
	rounds, seed := 3, uint64(1)
	if os.Getenv("CARGO_SHIM_CHAOS") == "long" {
		rounds = 30
	}
	if s := os.Getenv("CARGO_SHIM_CHAOS_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	k := runnerCount()
	w := NewWorld(t)
	w.Lock()
	works := make([]string, k)
	for n := range works {
		works[n] = w.Workspace(n)
	}
	rng := rand.New(rand.NewPCG(seed, 0xC0FFEE))
	var st chaosStats
	deadline := time.Now().Add(8 * time.Minute)
	for round := 0; round < rounds && time.Now().Before(deadline); round++ {
		st.rounds++
		if round > 0 {
			damageRandomly(t, w, rng)
		}
		w.Reg.SetDownloadDelay(time.Duration(rng.IntN(2)) * 150 * time.Millisecond)
		procs, killAt := startWithKills(w, works, rng)
		st.started += len(procs)
		start := time.Now()
		for n, p := range procs {
			if killAt[n] >= 0 {
				time.Sleep(time.Until(start.Add(killAt[n])))
				p.KillGroup()
				st.killed++
			}
		}
		for n, p := range procs {
			r := p.Wait()
			st.repairs += strings.Count(r.Stderr, "Repairing") + strings.Count(r.Stderr, "Removing") + strings.Count(r.Stderr, "Extracting")
			if r.Code != 0 {
				if killAt[n] >= 0 {
					st.killedFailed++
				} else {
					// A survivor can lose only to a kill in the middle of
					// cargo's own in-place download (README: limitations).
					st.survivorsFailed++
					t.Logf("seed %d round %d: survivor %d failed next to a killed runner: %s", seed, round, n, firstLine(r.Stderr, "error"))
				}
			}
		}
		w.Reg.SetDownloadDelay(0)
		// The run after the kills must pass.
		st.laterRuns++
		if r := w.Start(works[0], w.Home(), true, []string{"build"}).Wait(); r.Code != 0 {
			st.laterFailed++
			t.Fatalf("seed %d round %d: the run after the kills failed: %s", seed, round, r)
		}
	}
	// And K at once after all that.
	procs := make([]*Proc, k)
	for n := range procs {
		procs[n] = w.Start(works[n], w.Home(), true, []string{"build"})
	}
	for n, p := range procs {
		st.laterRuns++
		if r := p.Wait(); r.Code != 0 {
			st.laterFailed++
			t.Errorf("seed %d: final runner %d failed: %s", seed, n, r)
		}
	}
	w.Regdir = w.findRegdir()
	w.AssertHealthy()
	assertNoFakeExtractions(t, w)
	t.Logf("chaos summary (seed %d, K=%d): rounds=%d runs=%d killed=%d (of which failed %d) survivors-failed=%d repairs=%d later-runs=%d later-failed=%d",
		seed, k, st.rounds, st.started, st.killed, st.killedFailed, st.survivorsFailed, st.repairs, st.laterRuns, st.laterFailed)
}

// startWithKills starts a build in each workspace and picks, for about half
// of them, when to kill it (-1: never): early kills hit downloads,
// extraction and repairs; late ones hit compilation with locks held.
func startWithKills(w *World, works []string, rng *rand.Rand) ([]*Proc, []time.Duration) {
	procs := make([]*Proc, len(works))
	killAt := make([]time.Duration, len(works))
	for n := range procs {
		procs[n] = w.Start(works[n], w.Home(), true, []string{"build"})
		killAt[n] = -1
		if rng.IntN(2) == 0 {
			if rng.IntN(2) == 0 {
				killAt[n] = time.Duration(rng.IntN(150)) * time.Millisecond
			} else {
				killAt[n] = time.Duration(150+rng.IntN(2000)) * time.Millisecond
			}
		}
	}
	return procs, killAt
}

func damageRandomly(t *testing.T, w *World, rng *rand.Rand) {
	w.Regdir = w.findRegdir()
	c := fixtureCrates[rng.IntN(len(fixtureCrates))]
	ext := w.Extraction(c.Dir())
	switch rng.IntN(4) {
	case 0:
		os.RemoveAll(filepath.Join(ext, "Cargo.toml"))
	case 1:
		os.RemoveAll(ext)
	case 2:
		os.WriteFile(filepath.Join(ext, ".cargo-ok"), nil, 0o644)
	case 3:
		if fi, err := os.Stat(w.Tarball(c.Dir())); err == nil {
			os.Truncate(w.Tarball(c.Dir()), fi.Size()/2)
		}
	}
}

// assertNoFakeExtractions: every directory cargo would take for an
// extraction (<name>-<version> under src/<regdir>) has the complete marker;
// temp dirs never have such a name.
func assertNoFakeExtractions(t *testing.T, w *World) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(w.Shared, "src", w.Regdir))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(w.Shared, "src", w.Regdir, e.Name(), ".cargo-ok"))
		if err != nil || string(data) != `{"v":1}` {
			t.Errorf("%s looks like an extraction but its marker is %q (%v)", e.Name(), data, err)
		}
	}
	sort.Strings(names)
	t.Logf("src/%s: %s", w.Regdir, strings.Join(names, " "))
}

// A build waits for a repair of a crate it uses (an exclusive lock held by
// another runner), says so in cargo's style, and goes on when it is done.
func TestBuildWaitsForRepairOfItsCrate(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	lock := filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir, "flat-1.0.0.lock")
	l := exclusiveOnceFree(t, lock)
	cmd := loopback.Command(filepath.Join(binDir, "cargo"), w.Work, w.Env(w.Home(), true), []string{"build"})
	out, err := releaseWhen(t, cmd, l, func(line string) bool {
		return line == "    Blocking waiting for lock on crate flat v1.0.0 (held by another runner)"
	})
	if err != nil {
		t.Fatalf("build after the repair lock was released: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Blocking waiting for lock on crate flat v1.0.0") {
		t.Fatalf("no waiting message:\n%s", out)
	}
}

// releaseWhen runs cmd, releases l once a line of its stderr satisfies
// until (or at its end), and returns all of its stderr and its exit error.
func releaseWhen(t *testing.T, cmd *exec.Cmd, l *lockfile.Lock, until func(line string) bool) (string, error) {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if until(sc.Text()) {
			break
		}
	}
	l.Release()
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	err := cmd.Wait()
	return strings.Join(lines, "\n"), err
}

// A lock that is not released in time: one warning and cargo runs anyway;
// strict mode makes it an error.
func TestLockTimeoutFailsOpen(t *testing.T) {
	w := NewWorld(t)
	l := w.builtThenHeld("pmacro-0.1.5")
	defer l.Release()
	r := w.Cargo(w.Home(), true, []string{"build"}, "CARGO_SHIM_LOCK_TIMEOUT=300ms")
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning: cargo-shim: timed out after 300ms waiting for the lock on crate pmacro v0.1.5") {
		t.Fatalf("timeout must warn and run cargo: %s", r)
	}
	r = w.Cargo(w.Home(), true, []string{"build"}, "CARGO_SHIM_LOCK_TIMEOUT=300ms", "CARGO_SHIM_STRICT=1")
	if r.Code != 101 || !strings.Contains(r.Stderr, "error: cargo-shim: timed out") {
		t.Fatalf("strict timeout: %s", r)
	}
}

// builtThenHeld builds the workspace once through the shim, then holds
// crate's lock exclusively, as a repair would.
func (w *World) builtThenHeld(crate string) *lockfile.Lock {
	w.t.Helper()
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	return exclusiveOnceFree(w.t, filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir, crate+".lock"))
}

// exclusiveOnceFree takes lock exclusively once the holder of the previous
// build has seen its cargo exit and let go.
func exclusiveOnceFree(t *testing.T, lock string) *lockfile.Lock {
	t.Helper()
	var l *lockfile.Lock
	waitFor(t, "the previous build's holder to let go of "+lock, 10*time.Second, func() bool {
		var err error
		l, err = lockfile.Try(lock, lockfile.Exclusive)
		return err == nil
	})
	return l
}

// No Cargo.lock yet: every extraction in the registry is checked and the
// broken ones repaired before cargo resolves.
func TestNoCargoLockChecksTheRegistry(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	rm(t, filepath.Join(w.Work, "Cargo.lock"))
	r := w.MustCargo(w.Home(), true, "build")
	if !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs missing)") {
		t.Fatalf("no repair without a Cargo.lock:\n%s", r.Stderr)
	}
	w.AssertHealthy()
}

// A shim SIGKILLed in the middle of a repair leaves a temp dir that cargo
// never takes for an extraction; the next run repairs and cleans up.
func TestKilledMidRepair(t *testing.T) {
	w := NewWorld(t)
	big := loopback.CrateSpec{Name: "bigcrate", Version: "1.0.0", Files: map[string]string{
		"Cargo.toml": "[package]\nname = \"bigcrate\"\nversion = \"1.0.0\"\nedition = \"2021\"\n",
		"src/lib.rs": "pub fn big() {}\n",
	}}
	for n := 0; n < 4000; n++ {
		big.Files[fmt.Sprintf("data/d%02d/f%04d.txt", n%50, n)] = strings.Repeat("x", 1000+n%500)
	}
	w.Checksum[big.Dir()] = w.Reg.Publish(big)
	manifest, _ := os.ReadFile(filepath.Join(w.Work, "Cargo.toml"))
	writeFile(t, filepath.Join(w.Work, "Cargo.toml"), string(manifest)+"bigcrate = \"=1.0.0\"\n")
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	src := filepath.Join(w.Shared, "src", w.Regdir)
	hit := false
	for attempt := 0; attempt < 5 && !hit; attempt++ {
		rm(t, filepath.Join(w.Extraction(big.Dir()), "src", "lib.rs"))
		p := w.Start(w.Work, w.Home(), true, []string{"build"})
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			ents, _ := os.ReadDir(src)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".cargo-shim-tmp-bigcrate-1.0.0-") {
					p.KillGroup()
					hit = true
				}
			}
			if hit || p.Cmd.ProcessState != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		r := p.Wait()
		if !hit && r.Code == 0 {
			continue // the repair finished before we saw it; damage again
		}
	}
	if !hit {
		t.Skip("could not catch a repair in progress on this machine")
	}
	_, err := os.Stat(filepath.Join(w.Extraction(big.Dir()), "src", "lib.rs"))
	swapped := err == nil // the kill came after the atomic swap
	r := w.MustCargo(w.Home(), true, "build")
	leftovers := 0
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".cargo-shim-tmp-bigcrate") {
			leftovers++
		}
	}
	if !swapped {
		if !strings.Contains(r.Stderr, "Repairing bigcrate v1.0.0 (src/lib.rs missing)") {
			t.Fatalf("the run after the kill did not repair:\n%s", r.Stderr)
		}
		if leftovers != 0 {
			t.Fatalf("%d temp dirs of the killed repair left after the next repair", leftovers)
		}
	} else {
		t.Logf("the kill came after the swap; %d temp dirs wait for gc", leftovers)
	}
	assertNoFakeExtractions(t, w)
	w.AssertHealthy()
	i := store.Instance{Crate: store.Crate{Name: big.Name, Version: big.Version, Checksum: w.Checksum[big.Dir()]}, Regdir: w.Regdir}
	if f := (store.Registry{Root: w.Shared}).Check(i, store.Deep, false); f.Verdict != store.Healthy {
		t.Fatalf("bigcrate after the kill and the next run: %v %s", f.Verdict, f.Reason)
	}
}
