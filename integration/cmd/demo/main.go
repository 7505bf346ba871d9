// Command demo shows cargo-shim's main job: K runners, each with its own
// CARGO_HOME, sharing one registry directory, first with plain cargo and
// then through the shim, under the same faults. Run it with `make demo`.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

type phase struct {
	name         string
	wall         time.Duration
	runs, failed int
	miscompiled  int
	killed       int
	// causes are the distinct cause lines of the failures, in the order
	// first seen, with how many runs failed with each.
	causes []string
	counts map[string]int
}

type modeResult struct {
	phases    []*phase
	repairs   int
	downloads map[string]int
	coldMax   int // most downloads of one crate during the cold start
	warm      time.Duration
	warmLoad  float64 // share of the machine's CPU others used meanwhile
	wall      time.Duration
}

func main() {
	k := flag.Int("runners", 4, "runners started at once")
	shimDir := flag.String("shim-dir", "bin", "directory holding the drop-in `cargo`")
	keep := flag.Bool("keep", false, "keep the demo's temp directory")
	flag.Parse()
	if err := run(*k, *shimDir, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(k int, shimDir string, keep bool) error {
	realCargo, err := exec.LookPath("cargo")
	if err != nil {
		return fmt.Errorf("cargo is not on PATH: %w", err)
	}
	shimDir, _ = filepath.Abs(shimDir)
	if _, err := os.Stat(filepath.Join(shimDir, "cargo")); err != nil {
		return fmt.Errorf("no drop-in at %s/cargo (run make build): %w", shimDir, err)
	}
	root, err := os.MkdirTemp("", "cargo-shim-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(root)
	}
	fmt.Printf("cargo-shim demo: %d runners with their own CARGO_HOME share one registry directory,\n", k)
	fmt.Printf("served by a sparse registry on 127.0.0.1 (%d crates: build scripts, a proc-macro, nested modules).\n\n", len(loopback.Fixture))
	results := map[string]*modeResult{}
	for _, mode := range []string{"plain", "shim"} {
		fmt.Printf("== %s ==\n", map[string]string{"plain": "plain cargo", "shim": "cargo through cargo-shim"}[mode])
		d := ""
		bin := realCargo
		if mode == "shim" {
			d, bin = shimDir, filepath.Join(shimDir, "cargo")
		}
		res, err := scenario(filepath.Join(root, mode), k, bin, d)
		if err != nil {
			return err
		}
		results[mode] = res
		fmt.Println()
	}
	printTable(k, results["plain"], results["shim"])
	return nil
}

// scenario: a cold start, kills in the middle of downloads and builds, then
// damage left between runs, K runners at once each time.
func scenario(dir string, k int, bin, shimDir string) (*modeResult, error) {
	reg, err := loopback.NewRegistry()
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	d := &demoRun{dir: dir, k: k, bin: bin, shimDir: shimDir, reg: reg, res: &modeResult{}}
	if err := d.setup(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	cold := d.registry("registry-cold")
	// Held downloads widen cargo's window: the registry answers the K
	// requests for a crate together, so K plain cargos unpack it at the same
	// moment and all but one fail (.cargo-ok: File exists, or a file missing
	// under a compile), on an idle or a loaded machine alike. Through the
	// shim the others wait on cargo's (now shared) package-cache lock: one
	// request arrives, and is held only until the timeout.
	reg.SetDownloadBarrier(k, 3*time.Second)
	d.round("cold start", cold, nil)
	reg.SetDownloadBarrier(0, 0)
	d.res.coldMax = maxOf(reg.Downloads())

	killed := d.registry("registry-kills")
	reg.SetDownloadDelay(200 * time.Millisecond)
	kills := map[int]time.Duration{}
	for n := 0; n < k/2; n++ {
		kills[n] = time.Duration(150+400*n) * time.Millisecond
	}
	d.round("kills mid-download and mid-build", killed, kills)
	reg.SetDownloadDelay(0)
	d.round("the run after the kills", killed, nil)

	d.damageRound("damage: files deleted", killed, deleteFiles)
	d.round("the run after the deletions", killed, nil)
	d.damageRound("damage: a download cut short", killed, cutDownload)
	d.round("the run after the cut download", killed, nil)
	// Warm runners must not wait for each other: same wall time as plain,
	// on a healthy registry warmed by one run first.
	warm := d.registry("registry-warm")
	wh := filepath.Join(dir, "home-warmup")
	loopback.NewHome(wh, reg, warm)
	if r := loopback.Start(bin, d.works[0], loopback.CargoEnv(wh, shimDir), []string{"fetch"}).Wait(); r.Code != 0 {
		return nil, fmt.Errorf("warming the registry: %s", r)
	}
	load := startLoad()
	d.res.warm = d.round("warm registry, all at once", warm, nil).wall
	d.res.warmLoad = load.other()
	d.res.wall = time.Since(t0)
	d.res.downloads = reg.Downloads()
	return d.res, nil
}

// demoRun is one mode's scenario: K workspaces, a home per runner per round.
type demoRun struct {
	dir, bin, shimDir string
	k                 int
	reg               *loopback.Registry
	works             []string
	homes             int
	res               *modeResult
}

// setup publishes the fixture, locks the workspace once and copies it for
// each runner.
func (d *demoRun) setup() error {
	for _, c := range loopback.Fixture {
		d.reg.Publish(c)
	}
	work := filepath.Join(d.dir, "work")
	if err := loopback.WriteWorkspace(work, loopback.Fixture, loopback.AppMain); err != nil {
		return err
	}
	scratch := filepath.Join(d.dir, "scratch-home")
	if err := loopback.NewHome(scratch, d.reg, filepath.Join(d.dir, "scratch-registry")); err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(d.dir, "scratch-registry"), 0o755)
	if r := loopback.Start(d.bin, work, loopback.CargoEnv(scratch, ""), []string{"generate-lockfile"}).Wait(); r.Code != 0 {
		return fmt.Errorf("generate-lockfile: %s", r)
	}
	for n := 0; n < d.k; n++ {
		w := fmt.Sprintf("%s-%d", work, n)
		if err := loopback.CopyDir(work, w); err != nil {
			return err
		}
		d.works = append(d.works, w)
	}
	return nil
}

func (d *demoRun) registry(name string) string {
	p := filepath.Join(d.dir, name)
	os.MkdirAll(p, 0o755)
	return p
}

// round starts K builds at once on the shared registry, kills those in
// killAfter when their time comes, and tallies the rest.
func (d *demoRun) round(name, shared string, killAfter map[int]time.Duration) *phase {
	ph := &phase{name: name}
	procs := make([]*loopback.Proc, d.k)
	home := make([]string, d.k)
	for n := range procs {
		d.homes++
		home[n] = filepath.Join(d.dir, fmt.Sprintf("home%d", d.homes))
		loopback.NewHome(home[n], d.reg, shared)
		procs[n] = loopback.Start(d.bin, d.works[n], loopback.CargoEnv(home[n], d.shimDir), []string{"build"})
	}
	start := time.Now()
	for n, after := range killAfter {
		time.Sleep(time.Until(start.Add(after)))
		procs[n].KillGroup()
	}
	for n, p := range procs {
		r := p.Wait()
		ph.wall = max(ph.wall, time.Since(start))
		d.res.repairs += strings.Count(r.Stderr, "   Repairing ") + strings.Count(r.Stderr, "    Removing ") + strings.Count(r.Stderr, "  Extracting ")
		if _, killed := killAfter[n]; killed {
			ph.killed++
			continue
		}
		ph.tally(r, home[n])
	}
	ph.print()
	d.res.phases = append(d.res.phases, ph)
	return ph
}

// tally counts one finished runner: failed, miscompiled, or right.
func (ph *phase) tally(r loopback.Result, home string) {
	ph.runs++
	if r.Code != 0 {
		ph.failed++
		ph.cause(causeLine(r.Stderr))
		return
	}
	out, _ := exec.Command(filepath.Join(home, "target", "debug", "app")).Output()
	if strings.TrimSpace(string(out)) != loopback.WantApp {
		ph.failed++
		ph.miscompiled++
		ph.cause("miscompiled: app printed " + strings.TrimSpace(string(out)))
	}
}

func (ph *phase) cause(c string) {
	if ph.counts == nil {
		ph.counts = map[string]int{}
	}
	if ph.counts[c] == 0 {
		ph.causes = append(ph.causes, c)
	}
	ph.counts[c]++
}

func (ph *phase) print() {
	fmt.Printf("  %-34s %d of %d failed", ph.name, ph.failed, ph.runs)
	if ph.killed > 0 {
		fmt.Printf(" (%d more killed on purpose)", ph.killed)
	}
	fmt.Println()
	for _, c := range ph.causes {
		fmt.Printf("      %dx %s\n", ph.counts[c], c)
	}
}

// damageRound applies one kind of damage between runs, says what it did,
// and runs K builds on it.
func (d *demoRun) damageRound(name, shared string, damage func(src, cache string) []string) {
	src, _ := filepath.Glob(filepath.Join(shared, "src", "127.0.0.1-*"))
	cache, _ := filepath.Glob(filepath.Join(shared, "cache", "127.0.0.1-*"))
	applied := []string{"none: the registry has no crates yet"}
	if len(src) > 0 && len(cache) > 0 {
		applied = damage(src[0], cache[0])
	}
	fmt.Printf("  %s; applied:\n", name)
	for _, a := range applied {
		fmt.Printf("      - %s\n", a)
	}
	d.round(name, shared, nil)
}

// deleteFiles is what a TTL reaper by file age, or another home's
// auto-GC, leaves: files gone under a marker that still says "unpacked".
func deleteFiles(src, cache string) []string {
	var done []string
	did := func(err error, what string) {
		if err == nil {
			done = append(done, what)
		}
	}
	did(os.Remove(filepath.Join(src, "flat-1.0.0", "lib.rs")), "flat 1.0.0: lib.rs deleted from its extraction")
	did(os.Remove(filepath.Join(src, "autobuild-0.2.0", "build.rs")), "autobuild 0.2.0: build.rs deleted (cargo then builds without it: a miscompile)")
	return done
}

// cutDownload is what a job killed during cargo's download leaves: a
// .crate cut short, and (after a reaper) no extraction to hide it.
func cutDownload(src, cache string) []string {
	var done []string
	if os.RemoveAll(filepath.Join(src, "flat-1.0.0")) == nil {
		done = append(done, "flat 1.0.0: its whole extraction deleted")
	}
	tb := filepath.Join(cache, "flat-1.0.0.crate")
	if fi, err := os.Stat(tb); err == nil && os.Truncate(tb, fi.Size()/2) == nil {
		done = append(done, fmt.Sprintf("flat 1.0.0: its .crate cut to half (%d of %d bytes)", fi.Size()/2, fi.Size()))
	}
	if os.WriteFile(filepath.Join(src, "pmacro-0.1.5", ".cargo-ok"), nil, 0o644) == nil {
		done = append(done, "pmacro 0.1.5: its .cargo-ok marker emptied (an unpack cut short)")
	}
	return done
}

// causeLine is what a failed cargo run says went wrong: its error line and,
// when cargo gives a chain of causes, the innermost two ("failed to open
// .../.cargo-ok: File exists (os error 17)", "...: unexpected end of file"),
// the line people search for.
func causeLine(stderr string) string {
	var first string
	var causes []string
	inCause := false
	for _, l := range strings.Split(stderr, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case first == "" && strings.HasPrefix(t, "error"):
			first = t
		case t == "Caused by:":
			inCause = true
		case inCause && t != "":
			causes = append(causes, t)
			inCause = false
		}
	}
	if first == "" {
		return "exit status non-zero"
	}
	if n := len(causes); n > 0 {
		tail := causes[max(0, n-2):]
		first += ": " + strings.Join(tail, ": ")
	}
	// Each runner's home differs; the rest of the path says which crate.
	return shorten(homePath.ReplaceAllString(first, ".../registry/"), 200)
}

// homePath is a runner's home up to its registry.
var homePath = regexp.MustCompile(`/\S*?/registry/`)

// shorten keeps the start and the end of a long line: the end holds the cause.
func shorten(l string, n int) string {
	if len(l) <= n {
		return l
	}
	return l[:n/3] + " ... " + l[len(l)-(2*n/3):]
}

func printTable(k int, plain, shim *modeResult) {
	fmt.Println("== side by side ==")
	row := func(label, a, b string) { fmt.Printf("  %-36s %-18s %-18s\n", label, a, b) }
	row("", "plain cargo", "cargo-shim")
	for i := range plain.phases {
		p, s := plain.phases[i], shim.phases[i]
		row(p.name, fmt.Sprintf("%d/%d failed", p.failed, p.runs), fmt.Sprintf("%d/%d failed", s.failed, s.runs))
	}
	total := func(m *modeResult) (runs, failed, mis int) {
		for _, p := range m.phases {
			runs += p.runs
			failed += p.failed
			mis += p.miscompiled
		}
		return
	}
	pr, pf, pm := total(plain)
	sr, sf, sm := total(shim)
	row("runs (not killed)", fmt.Sprint(pr), fmt.Sprint(sr))
	row("failed (of which miscompiled)", fmt.Sprintf("%d (%d)", pf, pm), fmt.Sprintf("%d (%d)", sf, sm))
	row("repairs by the shim", "-", fmt.Sprint(shim.repairs))
	row("cold start: downloads of one crate", fmt.Sprintf("up to %d", plain.coldMax), fmt.Sprintf("up to %d", shim.coldMax))
	row(".crate downloads, all phases", fmt.Sprint(sumOf(plain.downloads)), fmt.Sprint(sumOf(shim.downloads)))
	row("warm registry: wall time of K runs", plain.warm.Round(10*time.Millisecond).String(), fmt.Sprintf("%s (%.2fx)", shim.warm.Round(10*time.Millisecond), float64(shim.warm)/float64(plain.warm)))
	row("wall time, all phases", plain.wall.Round(100*time.Millisecond).String(), shim.wall.Round(100*time.Millisecond).String())
	fmt.Println()
	fmt.Printf("%d crates; three shared registry directories (cold start; kills and damage; warm),\n", len(loopback.Fixture))
	fmt.Println("so the floor for all phases is three downloads per crate plus one per truncated tarball.")
	fmt.Println("The warm row compares K builds at once on a healthy registry: the shim must not")
	fmt.Println("make runners wait for each other (a lock around whole builds would). Plain")
	fmt.Println("cargo's wall time is shorter only because its failed runs stop early.")
	if l := max(plain.warmLoad, shim.warmLoad); l > loadedShare {
		fmt.Printf("\nnote: the warm timings were taken on a loaded machine: other processes used %.0f%%\n", 100*l)
		fmt.Printf("of the %d cores' CPU meanwhile. Compare the ratio, not the times; run again on an idle machine.\n", runtime.NumCPU())
	}
}

func sumOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func maxOf(m map[string]int) int {
	best := 0
	for _, v := range m {
		if v > best {
			best = v
		}
	}
	return best
}
