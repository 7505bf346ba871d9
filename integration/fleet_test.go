package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
)

// The fleet-lifecycle test: a seeded random sequence of what happens to a
// fleet over months (registry wipes, re-created volumes, homes added and
// deleted, runners SIGKILLed mid-download, mid-build and mid-repair, damage,
// gc, repair, a TTL reaper, plain cargo in the homes), with K runners whose
// homes persist. Each sequence starts with every event once (gc, the reaper
// and repair against a held build), then draws seeded random events. After
// every step the invariants hold:
//
//   - every run through the shim passes (plain cargo passes on a clean
//     registry with this workspace);
//   - plain cargo in a home the shim used passes whenever it passes in a
//     home the shim never touched, on the same registry;
//   - nothing a running build holds is deleted or replaced;
//   - nothing is left that the next run trips over (a run follows every step
//     that changed the registry).
//
// A failure prints the seed and the steps so far; the same seed and step
// count replay the same sequence (kill timings land where the machine puts
// them). With CARGO_SHIM_CHAOS=long the same sequences also run with plain
// cargo in place of the shim, and both failure counts are logged.

// fleetParams: K runners, random steps per seed (after the one of each
// event), seeds. The short run is for `make test`; CARGO_SHIM_CHAOS=long is
// `make chaos`.
func fleetParams() (k, steps int, seeds []uint64) {
	k, steps, seeds = 3, 6, []uint64{1}
	if os.Getenv("CARGO_SHIM_CHAOS") == "long" {
		k, steps, seeds = 4, 120, []uint64{1, 2, 3}
	}
	if s := os.Getenv("CARGO_SHIM_CHAOS_STEPS"); s != "" {
		fmt.Sscan(s, &steps)
	}
	if s := os.Getenv("CARGO_SHIM_CHAOS_SEED"); s != "" {
		var seed uint64
		fmt.Sscan(s, &seed)
		seeds = []uint64{seed}
	}
	return k, steps, seeds
}

func TestChaosFleetLifecycle(t *testing.T) {
	k, steps, seeds := fleetParams()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			st := runFleet(t, seed, k, steps, true)
			t.Logf("fleet through the shim (seed %d, K=%d): %s", seed, k, st)
			if os.Getenv("CARGO_SHIM_CHAOS") == "long" {
				pt := runFleet(t, seed, k, steps, false)
				t.Logf("same fleet, plain cargo (seed %d, K=%d): %s", seed, k, pt)
			}
		})
	}
}

type fleetStats struct {
	steps, runs, failed, killed int
	// plainInShimHome counts plain cargo runs in homes the shim used, and
	// how many failed where a fresh home's plain cargo failed too (the
	// registry's state breaks plain cargo, not the home).
	plainRuns, plainFailed, plainFailedAnywhere int
	heldViolations                              int
}

func (s fleetStats) String() string {
	return fmt.Sprintf("steps=%d runs=%d failed=%d killed=%d plain-cargo-in-shim-homes=%d failed=%d (of which also in a fresh home: %d) held-crates-touched=%d",
		s.steps, s.runs, s.failed, s.killed, s.plainRuns, s.plainFailed, s.plainFailedAnywhere, s.heldViolations)
}

// fleet is one sequence's state.
type fleet struct {
	t       *testing.T
	w       *World
	rng     *rand.Rand
	seed    uint64
	nsteps  int
	viaShim bool // false: the plain-cargo baseline, which counts instead of failing
	homes   []string
	steps   []string
	held    *heldBuild
	env     []string // for the next run: what a damage needs the shim to see it
	st      fleetStats
}

// bigCrate makes repairs last long enough to be killed in the middle.
func bigCrate() loopback.CrateSpec {
	big := loopback.CrateSpec{Name: "csi8-big", Version: "1.0.0", Files: map[string]string{"src/lib.rs": "pub fn big() {}\n"}}
	for n := 0; n < 1500; n++ {
		big.Files[fmt.Sprintf("data/d%02d/f%04d.txt", n%30, n)] = strings.Repeat("y", 500+n%300)
	}
	return big
}

func runFleet(t *testing.T, seed uint64, k, steps int, viaShim bool) fleetStats {
	w := NewWorld(t)
	big := bigCrate()
	w.Checksum[big.Dir()] = w.Reg.Publish(big)
	manifest, _ := os.ReadFile(filepath.Join(w.Work, "Cargo.toml"))
	writeFile(t, filepath.Join(w.Work, "Cargo.toml"), string(manifest)+big.Name+" = \"=1.0.0\"\n")
	w.Lock()
	f := &fleet{t: t, w: w, rng: rand.New(rand.NewPCG(seed, 0x8F1EE7)), seed: seed, nsteps: steps, viaShim: viaShim}
	for n := 0; n < k; n++ {
		f.addHome()
	}
	events := fleetEvents()
	total := 0
	for _, e := range events {
		total += e.weight
	}
	// Every event once, in an order that puts the lock-honouring ones
	// against a held build, then the seeded random sequence.
	for n := 0; n < len(events)+steps; n++ {
		var e fleetEvent
		if n < len(events) {
			e = events[n]
		} else {
			pick := f.rng.IntN(total)
			for _, e = range events {
				if pick < e.weight {
					break
				}
				pick -= e.weight
			}
		}
		f.step(e)
	}
	if f.held != nil {
		f.releaseHeld()
	}
	for _, h := range f.homes {
		f.mustRun(h, f.viaShim, "final run")
	}
	t.Logf("steps (shim=%v, seed %d):\n%s", viaShim, seed, strings.Join(f.steps, "\n"))
	return f.st
}

func (f *fleet) step(e fleetEvent) {
	f.st.steps++
	if e.quiet && f.held != nil {
		f.releaseHeld()
	}
	f.log("%s", e.name)
	e.do(f)
	f.checkHeld()
	if e.mutates {
		f.verify(e.quiet)
	}
}

func (f *fleet) log(format string, args ...any) {
	f.steps = append(f.steps, fmt.Sprintf("%3d %s", len(f.steps), fmt.Sprintf(format, args...)))
}

// fail stops the sequence with everything needed to replay it; the plain
// baseline only counts.
func (f *fleet) fail(format string, args ...any) {
	f.t.Helper()
	f.st.failed++
	msg := fmt.Sprintf(format, args...)
	f.log("FAILED: %s", firstLine(msg, ""))
	if !f.viaShim {
		return
	}
	f.t.Fatalf("fleet-lifecycle invariant broken (seed %d, step %d):\n%s\n\nsteps:\n%s\n\nreplay: CARGO_SHIM_CHAOS=%s CARGO_SHIM_CHAOS_SEED=%d CARGO_SHIM_CHAOS_STEPS=%d go test -count=1 -run TestChaosFleetLifecycle ./integration/",
		f.seed, f.st.steps, msg, strings.Join(f.steps, "\n"), os.Getenv("CARGO_SHIM_CHAOS"), f.seed, f.nsteps)
}

type fleetEvent struct {
	name    string
	weight  int
	mutates bool // a run follows, which must pass
	quiet   bool // needs no build running (an admin's wipe, damage by hand)
	do      func(*fleet)
}

func fleetEvents() []fleetEvent {
	return []fleetEvent{
		{"hold a build", 2, false, false, (*fleet).hold},
		{"cargo-shim gc --max-age 0s", 1, true, false, func(f *fleet) { f.admin("gc", "--max-age", "0s") }},
		{"TTL reaper", 1, true, false, (*fleet).reaper},
		{"cargo-shim repair", 1, true, false, func(f *fleet) { f.admin("repair") }},
		{"all runners at once", 2, false, false, (*fleet).burst},
		{"kill mid-build", 1, true, false, (*fleet).killMidBuild},
		{"release the held build", 1, false, false, func(f *fleet) {
			if f.held != nil {
				f.releaseHeld()
			}
		}},
		{"run", 6, false, false, func(f *fleet) { f.mustRun(f.anyHome(), f.viaShim, "run") }},
		{"plain cargo in a home", 3, false, false, func(f *fleet) { f.plainInHome(f.anyHome()) }},
		{"wipe the registry's contents", 1, true, true, func(f *fleet) { wipeContents(f.t, f.w.Shared) }},
		{"wipe .cargo-shim", 1, true, true, func(f *fleet) { mustRemoveAll(f.t, filepath.Join(f.w.Shared, ".cargo-shim")) }},
		{"re-create the registry dir", 1, true, true, func(f *fleet) { recreateRegistry(f.t, f.w) }},
		{"replace the volume with an empty one", 1, true, true, func(f *fleet) { f.w.NewVolume(f.t, f.homes) }},
		{"add a home", 1, false, false, func(f *fleet) { f.mustRun(f.addHome(), f.viaShim, "first run") }},
		{"delete a home", 1, false, false, (*fleet).deleteHome},
		{"kill mid-download", 1, true, true, (*fleet).killMidDownload},
		{"kill mid-repair", 1, true, true, (*fleet).killMidRepair},
		{"damage", 2, true, true, (*fleet).damage},
	}
}

func (f *fleet) anyHome() string { return f.homes[f.rng.IntN(len(f.homes))] }

// workspace is each home's own checkout, kept with the home.
func workspaceOf(home string) string { return home + "-work" }

func (f *fleet) addHome() string {
	h := f.w.Home()
	if err := loopback.CopyDir(f.w.Work, workspaceOf(h)); err != nil {
		f.t.Fatal(err)
	}
	f.homes = append(f.homes, h)
	return h
}

func (f *fleet) deleteHome() {
	if len(f.homes) < 2 {
		f.log("  only one home left: kept")
		return
	}
	n := f.rng.IntN(len(f.homes))
	h := f.homes[n]
	if f.held != nil && f.held.home == h {
		f.releaseHeld()
	}
	mustRemoveAll(f.t, h)
	mustRemoveAll(f.t, workspaceOf(h))
	f.homes = append(f.homes[:n], f.homes[n+1:]...)
	f.log("  deleted %s", filepath.Base(h))
}

func (f *fleet) start(home string, viaShim bool, extra ...string) *Proc {
	return f.w.Start(workspaceOf(home), home, viaShim, []string{"build"}, extra...)
}

// takeEnv hands the next run what the last damage needs to be seen.
func (f *fleet) takeEnv() []string {
	env := f.env
	f.env = nil
	return env
}

// mustRun is a run that must pass and build the right program.
func (f *fleet) mustRun(home string, viaShim bool, what string) {
	f.t.Helper()
	f.st.runs++
	r := f.start(home, viaShim, f.takeEnv()...).Wait()
	if r.Code != 0 {
		f.fail("%s in %s (shim=%v) failed: %s", what, filepath.Base(home), viaShim, r)
		return
	}
	if f.w.Regdir == "" {
		f.w.Regdir = f.w.findRegdir()
	}
	out, err := exec.Command(filepath.Join(home, "target", "debug", "app")).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != wantApp {
		f.fail("%s in %s (shim=%v) built a program that printed %q (%v), want %q", what, filepath.Base(home), viaShim, got, err, wantApp)
		return
	}
	f.log("  %s in %s (shim=%v): ok", what, filepath.Base(home), viaShim)
}

// plainInHome runs plain cargo in a home; a failure is the shim's fault
// only if plain cargo passes in a home the shim never touched.
func (f *fleet) plainInHome(home string) {
	f.t.Helper()
	f.st.plainRuns++
	r := f.start(home, false).Wait()
	if r.Code == 0 {
		f.log("  plain cargo in %s: ok", filepath.Base(home))
		return
	}
	f.st.plainFailed++
	fresh := f.w.Home()
	defer os.RemoveAll(fresh)
	if rf := f.start(home, false, "CARGO_HOME="+fresh, "CARGO_TARGET_DIR="+filepath.Join(fresh, "target")); rf != nil {
		if res := rf.Wait(); res.Code != 0 {
			f.st.plainFailedAnywhere++
			f.log("  plain cargo fails on this registry in any home: %s", firstLine(res.Stderr, "error"))
			return
		}
	}
	f.fail("plain cargo failed in %s, a home the shim used, but passes in a fresh home: %s", filepath.Base(home), r)
}

// verify follows every step that changed the registry: the next run must
// pass. Through the shim, after an admin's change (quiet) or at random
// otherwise, plain cargo in a shim home goes first: the home must not be
// what makes it fail.
func (f *fleet) verify(adminChange bool) {
	f.t.Helper()
	h := f.anyHome()
	plainFirst := f.rng.IntN(2) == 0 || adminChange
	if f.viaShim && plainFirst && f.env == nil {
		f.plainInHome(h)
	}
	f.mustRun(h, f.viaShim, "next run")
}

func (f *fleet) burst() {
	procs := make([]*Proc, len(f.homes))
	env := f.takeEnv()
	for n, h := range f.homes {
		procs[n] = f.start(h, f.viaShim, env...)
	}
	for n, p := range procs {
		f.st.runs++
		if r := p.Wait(); r.Code != 0 {
			f.fail("runner %s of %d started at once failed (shim=%v): %s", filepath.Base(f.homes[n]), len(procs), f.viaShim, r)
		}
	}
	f.log("  %d runners at once: done", len(procs))
}

// sleepKill SIGKILLs p's process group after d.
func (f *fleet) sleepKill(p *Proc, d time.Duration) {
	time.Sleep(d)
	p.KillGroup()
	p.Wait()
	f.st.killed++
	f.log("  killed after %s", d)
}

func (f *fleet) allCrates() []string {
	out := []string{bigCrate().Dir()}
	for _, c := range fixtureCrates {
		out = append(out, c.Dir())
	}
	return out
}

func (f *fleet) killMidDownload() {
	crates := f.allCrates()
	for n := 0; n < 2; n++ {
		c := crates[f.rng.IntN(len(crates))]
		if f.w.Regdir != "" {
			os.RemoveAll(f.w.Extraction(c))
			os.Remove(f.w.Tarball(c))
		}
	}
	f.w.Reg.SetDownloadDelay(200 * time.Millisecond)
	defer f.w.Reg.SetDownloadDelay(0)
	p := f.start(f.anyHome(), f.viaShim, "CARGO_TARGET_DIR="+f.t.TempDir())
	f.sleepKill(p, time.Duration(50+f.rng.IntN(600))*time.Millisecond)
}

func (f *fleet) killMidBuild() {
	p := f.start(f.anyHome(), f.viaShim, "CARGO_TARGET_DIR="+f.t.TempDir())
	f.sleepKill(p, time.Duration(300+f.rng.IntN(2500))*time.Millisecond)
}

// ensureWarm: every crate extracted and cached, for damage to hit. Only in
// the plain baseline can the warm-up run fail and leave it cold.
func (f *fleet) ensureWarm() bool {
	warm := func() bool {
		for _, c := range f.allCrates() {
			_, e := os.Stat(filepath.Join(f.w.Shared, "src", f.w.Regdir, c))
			_, tb := os.Stat(filepath.Join(f.w.Shared, "cache", f.w.Regdir, c+".crate"))
			if f.w.Regdir == "" || e != nil || tb != nil {
				return false
			}
		}
		return true
	}
	if warm() {
		return true
	}
	f.mustRun(f.anyHome(), f.viaShim, "warm-up run")
	if !warm() {
		f.log("  the registry is not warm: skipped")
		return false
	}
	return true
}

func (f *fleet) killMidRepair() {
	if !f.ensureWarm() {
		return
	}
	big := bigCrate().Dir()
	rm(f.t, filepath.Join(f.w.Extraction(big), "src", "lib.rs"))
	p := f.start(f.anyHome(), f.viaShim, "CARGO_TARGET_DIR="+f.t.TempDir())
	if !f.viaShim {
		f.sleepKill(p, time.Duration(50+f.rng.IntN(300))*time.Millisecond)
		return
	}
	src := filepath.Join(f.w.Shared, "src", f.w.Regdir)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && unix.Kill(p.Cmd.Process.Pid, 0) == nil {
		ents, _ := os.ReadDir(src)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".cargo-shim-tmp-"+big+"-") {
				f.sleepKill(p, 0)
				f.log("  caught the repair in progress")
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	f.sleepKill(p, 0)
	f.log("  the repair was over before the kill")
}

func (f *fleet) damage() {
	if !f.ensureWarm() {
		return
	}
	tc := damageCases[f.rng.IntN(len(damageCases))]
	f.log("  %s", tc.name)
	tc.damage(f.t, f.w)
	f.env = tc.env
}

func (f *fleet) admin(args ...string) {
	if !f.viaShim {
		f.log("  (no cargo-shim in the plain fleet)")
		return
	}
	if r := f.w.Admin(args...); r.Code != 0 {
		f.fail("cargo-shim %v: %s", args, r)
	}
}

// reaper deletes every crate, each only if it can take the crate's lock
// exclusively without waiting, as an admin's cron job would with flock(1),
// and only while it holds the registry's cold lock (README: gc).
func (f *fleet) reaper() {
	if f.w.Regdir == "" {
		return
	}
	locks := filepath.Join(f.w.Shared, ".cargo-shim", "locks", f.w.Regdir)
	os.MkdirAll(locks, 0o777)
	cold, err := lockfile.Try(filepath.Join(f.w.Shared, ".cargo-shim", "locks", "cold.lock"), lockfile.Exclusive)
	if err != nil {
		f.log("  a build on a cold registry runs: reaped nothing (%v)", err)
		return
	}
	defer cold.Release()
	ents, _ := os.ReadDir(filepath.Join(f.w.Shared, "src", f.w.Regdir))
	reaped, kept := 0, 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() {
			continue
		}
		cmd := exec.Command("flock", "-n", "-x", filepath.Join(locks, e.Name()+".lock"),
			"rm", "-rf", filepath.Join(f.w.Shared, "src", f.w.Regdir, e.Name()), filepath.Join(f.w.Shared, "cache", f.w.Regdir, e.Name()+".crate"))
		if cmd.Run() == nil {
			reaped++
		} else {
			kept++
		}
	}
	f.log("  reaped %d crates, %d locked", reaped, kept)
}

// heldBuild is a build held mid-compile by its own build script: every
// crate it uses must stay as it was while it runs.
type heldBuild struct {
	home, gate string
	done       chan Result
	inodes     map[string]uint64
}

func (f *fleet) hold() {
	if f.held != nil {
		f.log("  a build is already held")
		return
	}
	home := f.anyHome()
	ws := workspaceOf(home) + "-held"
	os.RemoveAll(ws)
	if err := loopback.CopyDir(f.w.Work, ws); err != nil {
		f.t.Fatal(err)
	}
	writeFile(f.t, filepath.Join(ws, "build.rs"), gateBuildRS)
	h := &heldBuild{home: home, gate: f.t.TempDir(), done: make(chan Result, 1), inodes: map[string]uint64{}}
	p := f.w.Start(ws, home, f.viaShim, []string{"build"}, "SHIM_TEST_GATE="+h.gate, "CARGO_TARGET_DIR="+f.t.TempDir())
	go func() { h.done <- p.Wait() }()
	// A sequence that stops early must not leave the build waiting forever.
	f.t.Cleanup(func() {
		if f.held == h {
			os.WriteFile(filepath.Join(h.gate, "go"), nil, 0o644)
			<-h.done
		}
	})
	for {
		if _, err := os.Stat(filepath.Join(h.gate, "started")); err == nil {
			break
		}
		select {
		case r := <-h.done:
			f.st.runs++
			f.fail("the held build in %s ended before its build script ran: %s", filepath.Base(home), r)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	if f.w.Regdir == "" {
		f.w.Regdir = f.w.findRegdir()
	}
	for _, c := range f.allCrates() {
		var st unix.Stat_t
		if unix.Lstat(f.w.Extraction(c), &st) == nil {
			h.inodes[c] = st.Ino
		}
	}
	f.held = h
	f.log("  holding a build in %s (%d crates extracted)", filepath.Base(home), len(h.inodes))
}

func (f *fleet) releaseHeld() {
	h := f.held
	f.held = nil
	os.WriteFile(filepath.Join(h.gate, "go"), nil, 0o644)
	r := <-h.done
	f.st.runs++
	if r.Code != 0 {
		f.fail("the held build in %s failed: %s", filepath.Base(h.home), r)
		return
	}
	f.log("  released the held build in %s: ok", filepath.Base(h.home))
}

// checkHeld: nothing a running build holds was deleted or replaced.
func (f *fleet) checkHeld() {
	if f.held == nil {
		return
	}
	for c, ino := range f.held.inodes {
		var st unix.Stat_t
		err := unix.Lstat(f.w.Extraction(c), &st)
		marker, _ := os.ReadFile(filepath.Join(f.w.Extraction(c), ".cargo-ok"))
		if err != nil || st.Ino != ino || string(marker) != `{"v":1}` {
			f.st.heldViolations++
			f.fail("%s, held by a running build, was removed or replaced (%v, marker %q)", c, err, marker)
			return
		}
	}
}
