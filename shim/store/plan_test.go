package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A plan record lists the regdirs it looked in; one added since (another
// registry, a mirror) holds instances the record does not know, which must
// be checked and pinned: the registry's top stamps say the record is stale.
func TestPlanRecordStaleWhenARegdirAppears(t *testing.T) {
	root := t.TempDir()
	reg := Registry{Root: root}
	for _, d := range []string{"index/a", "cache/a", "src/a"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	tb := writeTarball(t, filepath.Join(root, "cache", "a"), fnv, []entry{{name: "fnv-1.0.7/src/lib.rs", body: "pub fn f() {}"}})
	if _, err := extract(tb, fnv, reg.Extraction(Instance{Crate: fnv, Regdir: "a"})); err != nil {
		t.Fatal(err)
	}
	lock := []byte("version = 4\n\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://example.invalid/index\"\n")
	p, err := reg.LoadPlan(lock, "Cargo.lock")
	if err != nil || p.Cached() {
		t.Fatalf("first plan: cached=%v %v", p != nil && p.Cached(), err)
	}
	if err := reg.RecordPlan(p); err != nil {
		t.Fatal(err)
	}
	if p, err = reg.LoadPlan(lock, "Cargo.lock"); err != nil || !p.Cached() {
		t.Fatalf("the record was not used: %v", err)
	}
	// A regdir b appears in cache/. The new cache/ is another inode, so the
	// top stamps differ whatever the clock's resolution.
	next := filepath.Join(root, "cache.next")
	os.MkdirAll(filepath.Join(next, "b"), 0o755)
	os.Rename(filepath.Join(root, "cache", "a"), filepath.Join(next, "a"))
	data, _ := os.ReadFile(filepath.Join(next, "a", "fnv-1.0.7.crate"))
	os.WriteFile(filepath.Join(next, "b", "fnv-1.0.7.crate"), data, 0o644)
	os.Rename(filepath.Join(root, "cache"), filepath.Join(root, "cache.old"))
	os.Rename(next, filepath.Join(root, "cache"))
	p, err = reg.LoadPlan(lock, "Cargo.lock")
	if err != nil {
		t.Fatal(err)
	}
	want := reg.LockPath(Instance{Crate: fnv, Regdir: "b"})
	if p.Cached() || !slices.Contains(reg.LockPaths(p), want) {
		t.Fatalf("a stale record was used: cached=%v, locks %v, want %s among them", p.Cached(), reg.LockPaths(p), want)
	}
}
