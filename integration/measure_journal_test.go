package integration

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// The cost of the repair journal on the warm path (docs/fleet.md,
// Measurements): a no-op `cargo build` through the shim against plain
// cargo, interleaved, with no journal and then with one record. A
// measurement, not an assertion: it runs with CARGO_SHIM_MEASURE=1.
func TestMeasureJournalWarmPath(t *testing.T) {
	if os.Getenv("CARGO_SHIM_MEASURE") == "" {
		t.Skip("a measurement: set CARGO_SHIM_MEASURE=1")
	}
	w := NewWorld(t)
	w.Warm()
	h := w.Home()
	w.MustCargo(h, true, "build")
	w.MustCargo(h, true, "build")
	medians := func() (plain, shim time.Duration) {
		var p, s []time.Duration
		for i := 0; i < 31; i++ {
			for _, via := range []bool{false, true} {
				t0 := time.Now()
				w.MustCargo(h, via, "build")
				if via {
					s = append(s, time.Since(t0))
				} else {
					p = append(p, time.Since(t0))
				}
			}
		}
		for _, ds := range [][]time.Duration{p, s} {
			sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
		}
		return p[len(p)/2], s[len(s)/2]
	}
	p1, s1 := medians()
	// One record, of a crate this target dir never compiled: the run reads
	// the journal once, then only the marker.
	dir := filepath.Join(w.Shared, ".cargo-shim", "repaired")
	os.MkdirAll(dir, 0o1777)
	writeFile(t, filepath.Join(dir, "x"), "cargo-shim-repaired 1\nregdir "+w.Regdir+"\nname zzz\nversion 1.0.0\nat 1\n")
	time.Sleep(100 * time.Millisecond)
	w.MustCargo(h, true, "build")
	p2, s2 := medians()
	// The step itself, as the run's debug log times it.
	for i := 0; i < 5; i++ {
		r := w.Cargo(h, true, []string{"build"}, "CARGO_SHIM_LOG=debug")
		t.Logf("%s", firstLine(r.Stderr, "repair journal"))
	}
	t.Logf("no journal:  plain %v, shim %v, ratio %.3f", p1, s1, float64(s1)/float64(p1))
	t.Logf("one record:  plain %v, shim %v, ratio %.3f", p2, s2, float64(s2)/float64(p2))
}
