package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
)

// The network filesystem rows: the same drop-in, its registry on a
// loopback GlusterFS volume in the strict profile (no client caching: every
// lookup, stat, open and flock is a round trip to the brick, as between
// hosts that must agree at once) or on a loopback CephFS through ceph-fuse,
// measured against plain cargo in the same run.

// engine is one network filesystem the bench measures on: the
// repository's own script (relative to the module root `make bench` runs
// in) makes and removes it, as `make multihost` does.
type engine struct {
	mode         *string // the flag: auto, off, only, check
	name, script string
	up           []string // arguments of `script up` before the directory
	title, desc  string   // the BENCHMARKS.md section
}

var (
	glusterEngine = engine{name: "GlusterFS", script: "integration/multihost/glusterfs", up: []string{"strict"},
		title: "On GlusterFS (loopback volume, strict profile: no client caching)",
		desc:  "The registry on a GlusterFS volume served on 127.0.0.1 through FUSE, as `make multihost` uses it; every lookup, stat, open and flock is a round trip to the brick."}
	cephEngine = engine{name: "CephFS", script: "integration/multihost/cephfs",
		title: "On CephFS (loopback cluster, ceph-fuse)",
		desc:  "The registry on CephFS served by a one-node Ceph 16 cluster on 127.0.0.1 (mon, mgr, an OSD in RAM, MDS) and mounted through ceph-fuse, as `make multihost` uses it; the client caches what the MDS grants it capabilities for, and every flock is a round trip to the MDS."}
)

// engineUp makes e under dir. skip is the reason it cannot be made here
// (not root, no FUSE, no packages); down undoes it.
func engineUp(e engine, dir string) (mountA string, down func(), skip string, err error) {
	script, err := filepath.Abs(e.script)
	if err != nil {
		return "", nil, "", err
	}
	cmd := exec.Command(script, append(append([]string{"up"}, e.up...), dir)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	down = func() { exec.Command(script, "down", dir).Run() }
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 77 {
		return "", nil, strings.TrimSpace(errb.String()), nil
	}
	if err != nil {
		down()
		return "", nil, "", fmt.Errorf("%s up: %v: %s", script, err, errb.String())
	}
	mounts := strings.Fields(string(out))
	if len(mounts) != 2 {
		down()
		return "", nil, "", fmt.Errorf("%s up printed %q", script, out)
	}
	return mounts[0], down, "", nil
}

type engineResult struct {
	skip                 string
	trueMed, shim400     time.Duration
	floorDirs, floorLock time.Duration // sequential, in-process
	parDirs, parLock     time.Duration // 16 goroutines
	dirs                 int
	plainCheck, shimChk  time.Duration
	plain400, shim400Chk time.Duration // the no-op check at 400 crates
	checkCrates          int
	checkRuns            int
}

// benchEngine measures on e: 400 planned crates with /bin/true as cargo,
// the floor of what a check does there, and a warm no-op `cargo check` of a
// real 24-crate workspace, plain and through the shim.
func benchEngine(e engine, tmp, binDir string, runs int) (*engineResult, error) {
	mountA, down, skip, err := engineUp(e, filepath.Join(tmp, strings.ToLower(e.name)))
	if err != nil || skip != "" {
		return &engineResult{skip: skip}, err
	}
	defer down()
	res := &engineResult{}
	shimBin := filepath.Join(binDir, "cargo")
	if *e.mode == "check" {
		res.checkRuns = runs
		res.plainCheck, res.shimChk, res.checkCrates, err = noopCheck(tmp, mountA, shimBin, runs)
		return res, err
	}
	root := filepath.Join(mountA, "r400")
	fmt.Printf("generating a 400-crate registry on %s...\n", e.name)
	crates, err := genRegistryPar(root, 400, 16)
	if err != nil {
		return nil, err
	}
	s := &scenario{root: root, work: filepath.Join(tmp, "gl-ws400"), crates: 400}
	if err := workspace(s.work, crates); err != nil {
		return nil, err
	}
	os.MkdirAll(filepath.Join(root, "home"), 0o755)
	// As in the user-facing floor rows: a home whose registry is not the
	// CARGO_SHIM_REGISTRY makes the drop-in run cargo unprotected, and this
	// row timed that (14.6 ms where a protected run costs seconds here).
	os.Symlink(filepath.Join(root, "registry"), filepath.Join(root, "home", "registry"))
	if _, _, err := timed(shimBin, []string{"build"}, s.work, s.env(binDir)); err != nil {
		return nil, err
	}
	if err := protected(shimBin, s.work, s.env(binDir)); err != nil {
		return nil, err
	}
	var trueRuns []time.Duration
	for r := 0; r < runs; r++ {
		d, _, err := timed("/bin/true", nil, tmp, os.Environ())
		if err != nil {
			return nil, err
		}
		trueRuns = append(trueRuns, d)
		if d, _, err = timed(shimBin, []string{"build"}, s.work, s.env(binDir)); err != nil {
			return nil, err
		}
		s.samples = append(s.samples, d)
	}
	res.trueMed, res.shim400 = median(trueRuns), median(s.samples)
	reg := filepath.Join(root, "registry")
	res.dirs = countDirs(reg, crates)
	res.floorDirs, res.floorLock = netFloor(reg, crates, 1, 3)
	res.parDirs, res.parLock = netFloor(reg, crates, 16, 5)
	res.checkRuns = max(5, runs/3)
	res.plainCheck, res.shimChk, res.checkCrates, err = noopCheck(tmp, mountA, shimBin, res.checkRuns)
	if err != nil {
		return nil, err
	}
	fmt.Printf("building a 400-crate workspace on %s once (cargo check)...\n", e.name)
	res.plain400, res.shim400Chk, err = noopCheck400(tmp, mountA, shimBin, res.checkRuns)
	return res, err
}

// genRegistryPar is genRegistry with the crates written by workers
// goroutines: on a network filesystem each file costs several round trips.
func genRegistryPar(root string, n, workers int) ([]crateInfo, error) {
	if err := mkTrees(filepath.Join(root, "registry")); err != nil {
		return nil, err
	}
	out := make([]crateInfo, n)
	errs := make([]error, n)
	lockfile.Parallel(workers, n, func(k int) {
		out[k], errs[k] = genCrate(filepath.Join(root, "registry"), k)
	})
	return out, errors.Join(errs...)
}

func countDirs(reg string, crates []crateInfo) int {
	n := 0
	for _, c := range crates {
		filepath.WalkDir(filepath.Join(reg, "src", regdir, c.name+"-"+c.version), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

// netFloor times, in this process with workers goroutines, one lstat
// of every directory of the planned crates, and one open + shared flock
// per crate.
func netFloor(reg string, crates []crateInfo, workers, runs int) (dirs, locks time.Duration) {
	var dirPaths []string
	for _, c := range crates {
		filepath.WalkDir(filepath.Join(reg, "src", regdir, c.name+"-"+c.version), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirPaths = append(dirPaths, p)
			}
			return nil
		})
	}
	lockDir := filepath.Join(reg, "floor-locks")
	os.MkdirAll(lockDir, 0o777)
	var ds, ls []time.Duration
	for r := 0; r < runs; r++ {
		t := time.Now()
		lockfile.Parallel(workers, len(dirPaths), func(k int) {
			var st syscall.Stat_t
			syscall.Lstat(dirPaths[k], &st)
		})
		ds = append(ds, time.Since(t))
		fds := make([]int, len(crates))
		t = time.Now()
		lockfile.Parallel(workers, len(crates), func(k int) {
			fd, err := syscall.Open(filepath.Join(lockDir, crates[k].name), syscall.O_RDONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o666)
			if err == nil {
				syscall.Flock(fd, syscall.LOCK_SH)
				fds[k] = fd
			}
		})
		ls = append(ls, time.Since(t))
		for _, fd := range fds {
			if fd > 0 {
				syscall.Close(fd)
			}
		}
	}
	return median(ds), median(ls)
}

// noopCheck times a warm no-op `cargo check` of a workspace of 24 registry
// crates (the fixture's, and small generated ones), its registry on the
// volume and its target directory local, plain and through the shim,
// interleaved.
func noopCheck(tmp, mount, shimBin string, runs int) (plain, viaShim time.Duration, n int, err error) {
	crates := append([]loopback.CrateSpec(nil), loopback.Fixture...)
	for k := len(crates); k < 24; k++ {
		crates = append(crates, loopback.CrateSpec{Name: fmt.Sprintf("gl-dep-%02d", k), Version: "1.0.0", Files: map[string]string{
			"src/lib.rs":     fmt.Sprintf("pub mod m;\npub fn v() -> u32 { m::x() + %d }\n", k),
			"src/m.rs":       "pub fn x() -> u32 { 1 }\n",
			"tests/basic.rs": "#[test]\nfn t() {}\n",
		}})
	}
	write := func(dir string) error { return loopback.WriteWorkspace(dir, crates, loopback.AppMain) }
	plain, viaShim, err = noopCheckOf(tmp, mount, shimBin, "gl-check", crates, write, runs)
	return plain, viaShim, len(crates), err
}

// noopCheck400 is noopCheck at 400 trivial crates, as the user-facing rows
// on a local disk: what plain cargo's own no-op costs where every stat is a
// round trip, against which the shim's cost at 400 crates is a share.
func noopCheck400(tmp, mount, shimBin string, runs int) (plain, viaShim time.Duration, err error) {
	crates := trivialCrates(400)
	write := func(dir string) error { return ufWorkspace(dir, len(crates), crates) }
	return noopCheckOf(tmp, mount, shimBin, "gl-check400", crates, write, runs)
}

// noopCheckOf is noopCheck's measure for any crates, its scratch names
// starting with name (a workspace, a home, a registry on the volume).
func noopCheckOf(tmp, mount, shimBin, name string, crates []loopback.CrateSpec, write func(dir string) error, runs int) (plain, viaShim time.Duration, err error) {
	reg, err := loopback.NewRegistry()
	if err != nil {
		return 0, 0, err
	}
	defer reg.Close()
	for _, c := range crates {
		reg.Publish(c)
	}
	work := filepath.Join(tmp, name+"-work")
	if err := write(work); err != nil {
		return 0, 0, err
	}
	home := filepath.Join(tmp, name+"-home")
	shared := filepath.Join(mount, name+"-registry")
	for _, d := range []string{home, shared} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(reg.CargoConfig()), 0o644); err != nil {
		return 0, 0, err
	}
	if err := os.Symlink(shared, filepath.Join(home, "registry")); err != nil {
		return 0, 0, err
	}
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		return 0, 0, err
	}
	plainEnv := loopback.CargoEnv(home, "")
	shimEnv := loopback.CargoEnv(home, filepath.Dir(shimBin))
	if _, _, err := timed(cargo, []string{"check"}, work, plainEnv); err != nil {
		return 0, 0, err
	}
	if _, _, err := timed(shimBin, []string{"check"}, work, shimEnv); err != nil {
		return 0, 0, err
	}
	var ps, ss []time.Duration
	for r := 0; r < runs; r++ {
		d, _, err := timed(cargo, []string{"check"}, work, plainEnv)
		if err != nil {
			return 0, 0, err
		}
		ps = append(ps, d)
		if d, _, err = timed(shimBin, []string{"check"}, work, shimEnv); err != nil {
			return 0, 0, err
		}
		ss = append(ss, d)
	}
	return median(ps), median(ss), nil
}

// writeEngine renders e's section of BENCHMARKS.md.
func writeEngine(b *strings.Builder, e engine, g *engineResult, runs int) {
	fmt.Fprintf(b, "\n## %s\n\n", e.title)
	if g.skip != "" {
		fmt.Fprintf(b, "Skipped on this machine: %s.\n", g.skip)
		return
	}
	if *e.mode == "check" {
		fmt.Fprintf(b, "Warm no-op `cargo check` of %d registry crates, medians of %d interleaved runs: plain cargo %s, through the shim %s (%.2fx; %s).\n",
			g.checkCrates, g.checkRuns, ms(g.plainCheck), ms(g.shimChk), float64(g.shimChk)/float64(g.plainCheck), verdict(float64(g.shimChk) <= 1.3*float64(g.plainCheck), "<= 1.3x plain cargo"))
		return
	}
	ov := g.shim400 - g.trueMed
	fmt.Fprintf(b, "%s Medians of %d interleaved runs (%d for cargo check).\n\n", e.desc, runs, g.checkRuns)
	fmt.Fprintf(b, "| what | median | budget |\n|---|---|---|\n")
	fmt.Fprintf(b, "| warm no-op `cargo check`, %d registry crates, plain cargo | %s | |\n", g.checkCrates, ms(g.plainCheck))
	fmt.Fprintf(b, "| the same through the shim | %s (%.2fx) | %s |\n", ms(g.shimChk), float64(g.shimChk)/float64(g.plainCheck), verdict(float64(g.shimChk) <= 1.3*float64(g.plainCheck), "<= 1.3x plain cargo"))
	fmt.Fprintf(b, "| 400 planned crates, /bin/true as cargo: overhead over /bin/true (%s) | %s | %s |\n", ms(g.trueMed), ms(ov), verdict(ov <= 50*time.Millisecond, "<= 50 ms"))
	fmt.Fprintf(b, "| warm no-op `cargo check`, 400 trivial registry crates, plain cargo | %s | |\n", ms(g.plain400))
	fmt.Fprintf(b, "| the same through the shim | %s (%.2fx) | |\n", ms(g.shim400Chk), float64(g.shim400Chk)/float64(g.plain400))
	fmt.Fprintf(b, "| the shim's own cost at 400 planned crates (the /bin/true row, a real-shaped registry) as a share of plain cargo's 400-crate no-op | %.0f%% | |\n", 100*float64(ov)/float64(g.plain400))
	fmt.Fprintf(b, "\nFloor there (400 crates, %d directories, in-process):\n\n| what | 1 goroutine | 16 goroutines |\n|---|---|---|\n", g.dirs)
	fmt.Fprintf(b, "| lstat of every directory | %s | %s |\n| open + shared flock of one file per crate | %s | %s |\n", ms(g.floorDirs), ms(g.parDirs), ms(g.floorLock), ms(g.parLock))
	fmt.Fprintf(b, "\nThe drop-in at 400 crates costs %.2fx the parallel floor of directories + locks. ", float64(ov)/float64(g.parDirs+g.parLock))
	if ov > 50*time.Millisecond {
		fmt.Fprintf(b, "The 50 ms budget is below that floor here: a check that looks at each directory once and pins each crate cannot be cheaper than those round trips on two cores that also run the %s client and server.", e.name)
	}
	b.WriteString("\n")
}

// runEngineOnly measures and writes e's section alone.
func runEngineOnly(e engine, runs int, out, binDir string) error {
	binDir, _ = filepath.Abs(binDir)
	tmp, err := os.MkdirTemp("", "cargo-shim-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	g, err := benchEngine(e, tmp, binDir, runs)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks (%s only)\n\nWritten by `bench -%s %s` on %s.\n", e.name, strings.ToLower(e.name), *e.mode, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	writeEngine(&b, e, g, runs)
	fmt.Print(b.String())
	return os.WriteFile(out, []byte(b.String()), 0o644)
}
