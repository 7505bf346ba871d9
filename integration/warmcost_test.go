package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// warmBaselineEnv names a directory with a drop-in `cargo` built from
// before the warm counter, to measure what counting a warm run costs end
// to end (docs/events-metrics.md). Unset: the measurement is skipped.
const warmBaselineEnv = "CARGO_SHIM_WARM_BASELINE_BIN"

// TestMeasureWarmCount prints medians of interleaved warm runs: /bin/true
// as the real cargo (only the drop-in's own work), the drop-in without and
// with the counter, and a real no-op `cargo build`, plain and through the
// shim. It asserts nothing about time.
func TestMeasureWarmCount(t *testing.T) {
	old := os.Getenv(warmBaselineEnv)
	if old == "" {
		t.Skip(warmBaselineEnv + " not set")
	}
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	w.MustCargo(home, true, "build")
	// run returns the wall time and the CPU time (user + system) of the
	// process: on a loaded machine the second is the steadier.
	var cpu time.Duration
	run := func(bin string, args []string, extra ...string) time.Duration {
		t0 := time.Now()
		env := append(w.Env(home, bin != realCargo), extra...)
		p := loopback.Start(bin, w.Work, env, args)
		if r := p.Wait(); r.Code != 0 {
			t.Fatalf("%s: %s", bin, r)
		}
		cpu = p.Cmd.ProcessState.UserTime() + p.Cmd.ProcessState.SystemTime()
		return time.Since(t0)
	}
	shimNew, shimOld := filepath.Join(binDir, "cargo"), filepath.Join(old, "cargo")
	noop := "CARGO_SHIM_REAL_CARGO=/bin/true"
	cases := []struct {
		name string
		fn   func() time.Duration
	}{
		{"/bin/true", func() time.Duration { return run("/bin/true", nil) }},
		{"drop-in before (real cargo = /bin/true)", func() time.Duration { return run(shimOld, []string{"build"}, noop) }},
		{"drop-in with warm counter (real cargo = /bin/true)", func() time.Duration { return run(shimNew, []string{"build"}, noop) }},
		{"plain cargo build (no-op)", func() time.Duration { return run(realCargo, []string{"build"}) }},
		{"cargo build through the drop-in with warm counter", func() time.Duration { return run(shimNew, []string{"build"}) }},
	}
	// Time on a shared 2-core machine is noisy; syscalls are not. Count
	// those of one warm run of each drop-in (the holder included), and
	// show the counter's own.
	if strace, err := exec.LookPath("strace"); err == nil {
		for _, bin := range []string{shimOld, shimNew} {
			out := filepath.Join(t.TempDir(), "strace")
			run(strace, []string{"-f", "-qq", "-o", out, bin, "build"}, noop)
			b, _ := os.ReadFile(out)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			// The counter's calls: from its open to the close, in its thread.
			var warm []string
			pid := ""
			for _, l := range lines {
				if pid == "" && strings.Contains(l, "warm.") {
					pid = strings.Fields(l)[0]
				}
				if f := strings.Fields(l); pid != "" && len(f) > 1 && f[0] == pid && !strings.Contains(l, "resumed>") {
					warm = append(warm, strings.Join(f[1:], " "))
					if strings.HasPrefix(f[1], "close(") {
						break
					}
				}
			}
			t.Logf("%s: the warm counter's syscalls: %q", bin, warm)
		}
	}
	const n = 31
	times := make([][]time.Duration, len(cases))
	cpus := make([][]time.Duration, len(cases))
	for k := 0; k < n; k++ {
		for c := range cases {
			times[c] = append(times[c], cases[c].fn())
			cpus[c] = append(cpus[c], cpu)
		}
	}
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	for c, tc := range cases {
		t.Logf("%-55s median %8.2f ms wall, %6.2f ms CPU", tc.name, median(times[c]), median(cpus[c]))
	}
}
