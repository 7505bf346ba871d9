package integration

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func TestZZMeasureWarm(t *testing.T) {
	if os.Getenv("FLEET_MEASURE") == "" {
		t.Skip()
	}
	w := NewWorld(t)
	w.Warm()
	h := w.Home()
	w.MustCargo(h, true, "build")
	w.MustCargo(h, true, "build")
	med := func(viaShim bool) time.Duration {
		var ds []time.Duration
		for i := 0; i < 31; i++ {
			t0 := time.Now()
			w.MustCargo(h, viaShim, "build")
			ds = append(ds, time.Since(t0))
		}
		sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
		return ds[len(ds)/2]
	}
	p1, s1 := med(false), med(true)
	// a journal with one record (of a crate this target never compiled)
	os.MkdirAll(filepath.Join(w.Shared, ".cargo-shim", "repaired"), 0o1777)
	writeFile(t, filepath.Join(w.Shared, ".cargo-shim", "repaired", "x"), "cargo-shim-repaired 1\nregdir "+w.Regdir+"\nname zzz\nversion 1.0.0\nat 1\n")
	time.Sleep(100 * time.Millisecond)
	w.MustCargo(h, true, "build")
	p2, s2 := med(false), med(true)
	t.Logf("no journal: plain %v shim %v ratio %.3f", p1, s1, float64(s1)/float64(p1))
	t.Logf("journal:    plain %v shim %v ratio %.3f", p2, s2, float64(s2)/float64(p2))
}
