package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// writeUserFacing renders the user-facing sections, between the markers.
func writeUserFacing(b *strings.Builder, u *userFacing, how string) {
	host, _ := os.Hostname()
	b.WriteString("\n" + ufBegin + "\n")
	fmt.Fprintf(b, "\n## User-facing: warm no-op `cargo check`, plain cargo vs through the drop-in\n\n")
	fmt.Fprintf(b, "Measured by `%s` on %s (%s; %d CPUs, %s; kernel %s; %s; on %s). Load average %s when it started, %s when it ended.",
		how, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), fsOf(u.tmp), u.loadBefore, u.loadAfter)
	if loaded(u.loadBefore) || loaded(u.loadAfter) {
		fmt.Fprintf(b, " **The machine was heavily loaded** (more runnable tasks than CPUs): every absolute time here is inflated and spread; the ratios, from interleaved runs of the same commands, still compare, but the added milliseconds do not carry to a quiet machine.")
	}
	fmt.Fprintf(b, "\n\nA workspace of N trivial registry crates (`#![no_std]`, one function each) from a sparse registry served on 127.0.0.1, checked once; then a warm no-op `cargo check`: real cargo through the rustup proxy (`%s`), against the same command with the drop-in first on PATH (which then execs that proxy). Medians of %d interleaved runs.\n\n", rustupProxy(), u.runs)
	fmt.Fprintf(b, "| N crates | plain no-op `cargo check` | through the drop-in | ratio | added | target | fastest runs: plain, drop-in, ratio |\n|---|---|---|---|---|---|---|\n")
	for _, c := range u.checks {
		ratio, added := float64(c.viaSh)/float64(c.plain), c.viaSh-c.plain
		target := verdict(ratio <= 1.05, "<= 1.05x")
		if c.crates < 100 {
			target = verdict(added <= 1500*time.Microsecond, "<= 1.5 ms added")
		}
		fmt.Fprintf(b, "| %d | %s | %s | %.2f | %s | %s | %s, %s, %.2f |\n", c.crates, ms(c.plain), ms(c.viaSh), ratio, ms(added), target, ms(c.plainMin), ms(c.viaShMin), float64(c.viaShMin)/float64(c.plainMin))
	}
	fmt.Fprintf(b, "\nThe targets are judged on the medians; on a loaded machine the fastest runs, the least disturbed by other work, are a second view of the same comparison.\n")
	writeWrapperFloors(b, u)
	writeFloorRatio(b, u)
	writeStrace(b, u)
	b.WriteString("\n" + ufEnd + "\n")
}

// writeWrapperFloors: what a Go wrapper doing no work adds, interleaved
// with the rows above (wrappers.go).
func writeWrapperFloors(b *strings.Builder, u *userFacing) {
	fmt.Fprintf(b, "\n### What a Go wrapper that does nothing adds (same runs)\n\n")
	fmt.Fprintf(b, "Two programs built by the bench, interleaved with the rows above: one that only execs cargo (any drop-in written in Go), and one that first starts a second Go process living until cargo exits (the shape of the drop-in's lock holder: a flock must outlive the exec in a process that is not cargo, or cargo's children would inherit it). Neither checks or locks anything.\n\n")
	fmt.Fprintf(b, "| N crates | plain | Go exec only: added, ratio | Go exec + second Go process: added, ratio | the drop-in: added, ratio | the drop-in over the second row |\n|---|---|---|---|---|---|\n")
	for _, c := range u.checks {
		fmt.Fprintf(b, "| %d | %s | %s, %.2f | %s, %.2f | %s, %.2f | %s |\n", c.crates, ms(c.plain), ms(c.goExec-c.plain), float64(c.goExec)/float64(c.plain),
			ms(c.goTwo-c.plain), float64(c.goTwo)/float64(c.plain), ms(c.viaSh-c.plain), float64(c.viaSh)/float64(c.plain), ms(c.viaSh-c.goTwo))
	}
}

func writeFloorRatio(b *strings.Builder, u *userFacing) {
	shimOv, floorOv := u.shim400-u.trueMed, u.floor400-u.trueMed
	fmt.Fprintf(b, "\n## The drop-in's own cost against a floor measured as a process (400 crates, /bin/true as cargo)\n\n")
	fmt.Fprintf(b, "The floor is a fresh Go process built by the bench that does what a warm run of this design cannot avoid: one lstat of each of the %d directories of the 400 planned extractions, one open and one shared flock of one file per crate, every lock's descriptor kept, then exec of /bin/true. It is started with its descriptor table already sized for 400 locks (an inherited descriptor at 432, as the drop-in starts its lock holder), since a Go process that grows its table waits for an RCU grace period each time. Same generated registry as the rows above it; medians of %d interleaved runs.\n\n", u.floorDirs, u.runs)
	fmt.Fprintf(b, "| what | median | over /bin/true |\n|---|---|---|\n| /bin/true | %s | |\n| the drop-in, 400 planned crates | %s | %s |\n| the floor process | %s | %s |\n| the floor process, its table grown as it goes (not the floor: shown for the RCU cost) | %s | %s |\n",
		ms(u.trueMed), ms(u.shim400), ms(shimOv), ms(u.floor400), ms(floorOv), ms(u.floorUnsized), ms(u.floorUnsized-u.trueMed))
	fmt.Fprintf(b, "\nThe drop-in's own cost at 400 crates is **%.2fx** the process floor (%s; the in-process floor of `make bench` leaves out the Go start, the exec and the descriptor table).\n",
		float64(shimOv)/float64(floorOv), verdict(float64(shimOv) <= 1.3*float64(floorOv), "<= 1.3x"))
}

func writeStrace(b *strings.Builder, u *userFacing) {
	fmt.Fprintf(b, "\n## Syscalls per crate (one warm run under `strace -f -c`)\n\n")
	if u.straceSkip != "" {
		fmt.Fprintf(b, "Not measured: %s.\n", u.straceSkip)
		return
	}
	fmt.Fprintf(b, "Every process of the run is counted (the drop-in, its holder, the exec'd /bin/true). /bin/true alone makes %d syscalls. \"per crate\" is (total - that) / crates, so at 24 crates it is mostly a Go runtime's start; \"per added crate\" is the growth from 24 to 400 crates divided by the 376 added, what each crate costs once the start is paid. A count, unlike a time, does not depend on the load (the Go runtime's nanosleep and futex calls do, a little).\n\n", u.trueSyscalls)
	fmt.Fprintf(b, "| what | planned crates | syscalls | per crate | per added crate | top 5 |\n|---|---|---|---|---|---|\n")
	first := map[string]straceRow{}
	for _, s := range u.strace {
		marginal := ""
		if f, ok := first[s.what]; ok && s.crates > f.crates {
			marginal = fmt.Sprintf("%.1f", float64(s.total-f.total)/float64(s.crates-f.crates))
		} else {
			first[s.what] = s
		}
		fmt.Fprintf(b, "| %s | %d | %d | %.1f | %s | %s |\n", s.what, s.crates, s.total, float64(s.total-u.trueSyscalls)/float64(s.crates), marginal, s.top)
	}
}

// loaded is true when the 1-minute load average is above the CPU count.
func loaded(avg string) bool {
	f, err := strconv.ParseFloat(strings.Fields(avg + " x")[0], 64)
	return err == nil && f > float64(runtime.NumCPU())
}

func rustupProxy() string {
	p, err := exec.LookPath("cargo")
	if err != nil {
		return "cargo"
	}
	if t, err := os.Readlink(p); err == nil {
		return p + " -> " + filepath.Base(t)
	}
	return p
}

// spliceUserFacing replaces the marked section of the report at path (or
// appends it when there is none).
func spliceUserFacing(path, section string) (string, error) {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	s := string(old)
	i, j := strings.Index(s, ufBegin), strings.Index(s, ufEnd)
	section = strings.TrimPrefix(section, "\n")
	switch {
	case i >= 0 && j > i:
		s = s[:i] + section + strings.TrimPrefix(s[j+len(ufEnd):], "\n")
	case s == "":
		s = "# Benchmarks\n\n" + section
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + section
	}
	return s, os.WriteFile(path, []byte(s), 0o644)
}

// runUserFacingOnly measures the user-facing sections alone and writes them
// into the report in place.
func runUserFacingOnly(runs int, out, binDir string) error {
	binDir, _ = filepath.Abs(binDir)
	if _, err := os.Stat(filepath.Join(binDir, "cargo")); err != nil {
		return fmt.Errorf("%s missing (make build): %w", filepath.Join(binDir, "cargo"), err)
	}
	tmp := *keep
	if tmp == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "cargo-shim-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
	}
	u, err := benchUserFacing(tmp, binDir, runs)
	if err != nil {
		return err
	}
	var b strings.Builder
	writeUserFacing(&b, u, fmt.Sprintf("go run ./integration/cmd/bench -userfacing only -runs %d", runs))
	fmt.Print(b.String())
	_, err = spliceUserFacing(out, b.String())
	return err
}
