package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/events"
)

type sink []events.Event

func (s *sink) Emit(e events.Event) { *s = append(*s, e) }

// Every change the store makes to a crate is one event through
// Registry.Events, naming the crate: the extraction of a cached tarball,
// the repair of a broken extraction, gc's removal, and the trash emptied
// (its crate parsed back from the trash name, dots in the regdir and all).
func TestStoreEmitsEachChange(t *testing.T) {
	var got sink
	r := Registry{Root: t.TempDir(), Events: &got}
	i := cachedCrate(t, r)
	ctx := context.Background()
	if _, _, err := r.RepairCrate(ctx, i, RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(r.Extraction(i), "lib.rs"))
	if _, _, err := r.RepairCrate(ctx, i, RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Collect(i, GCPolicy{Now: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.EmptyTrash(0); err != nil {
		t.Fatal(err)
	}
	want := []struct{ kind, action, reason string }{
		{events.KindExtract, ActExtracted, "cached, not extracted"},
		{events.KindRepair, ActReextracted, "lib.rs missing"},
		{events.KindRemove, "gc-extraction", ""},
		{events.KindRemove, "trash", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(want), got)
	}
	for n, w := range want {
		e := got[n]
		if e.Kind != w.kind || e.Action != w.action || (w.reason != "" && e.Reason != w.reason) ||
			e.Crate != "flat" || e.Version != "1.0.0" || e.Regdir != i.Regdir {
			t.Errorf("event %d: %+v, want %s %s %q of flat 1.0.0 in %s", n, e, w.kind, w.action, w.reason, i.Regdir)
		}
	}
	if got[2].Bytes <= 0 {
		t.Errorf("gc's event says it freed %d bytes", got[2].Bytes)
	}
}
