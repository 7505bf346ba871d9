package stats

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Concurrent runs add up: every record lands once (flock per open file, so
// goroutines contend as processes do).
func TestAddConcurrent(t *testing.T) {
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = time.Minute // on a loaded machine 40 adders may queue long
	root := t.TempDir()
	now := time.Now()
	var wg sync.WaitGroup
	const n = 40
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := Record{Planned: k%2 == 0}
			rec.Act("reextracted")
			rec.Wait(time.Duration(k) * time.Millisecond)
			if err := Add(root, rec, now); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := Read(root, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Runs != n || got.RunsPlanned != n/2 || got.Actions["reextracted"] != n || got.LockWaits.Count != n {
		t.Fatalf("totals after %d concurrent adds: %+v", n, got)
	}
	if got.LockWaits.LongestSeconds != 0.039 {
		t.Fatalf("longest wait %v, want 0.039", got.LockWaits.LongestSeconds)
	}
	ents, _ := os.ReadDir(filepath.Join(root, dirRel))
	if len(ents) != 2 {
		t.Fatalf("stats dir holds %d entries, want the totals and their lock", len(ents))
	}
}

func TestZeroAndGarbage(t *testing.T) {
	root := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, err := Read(root, t0); err != nil || got.Runs != 0 || !got.Since.Equal(t0) {
		t.Fatalf("nothing recorded: %+v %v", got, err)
	}
	rec := Record{FailOpen: 1}
	if err := Add(root, rec, t0); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	if err := Zero(root, t1); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(root, t1); got.Runs != 0 || got.FailOpen != 0 || !got.Since.Equal(t1) {
		t.Fatalf("after zero: %+v", got)
	}
	// A garbled file is started again, not a failure of every run.
	file := filepath.Join(root, dirRel, fileName)
	os.WriteFile(file, []byte("{not json"), 0o666)
	if err := Add(root, rec, t1); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(root, t1); got.Runs != 1 || got.FailOpen != 1 {
		t.Fatalf("after garbage: %+v", got)
	}
}

// Nothing outside the registry is read or written through a symlink
// another uid planted: not at the totals file, not at the stats directory.
func TestPlantedSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "totals.json")
	os.WriteFile(target, []byte("{}"), 0o644)
	os.MkdirAll(filepath.Join(root, dirRel), 0o777)
	os.Symlink(target, filepath.Join(root, dirRel, fileName))
	if _, err := Read(root, time.Now()); err == nil {
		t.Fatal("read through a symlink")
	}
	if err := Add(root, Record{FailOpen: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "{}" {
		t.Fatalf("wrote through a symlink: %q", b)
	}
	// The stats directory itself a link out of the registry.
	root2 := t.TempDir()
	os.MkdirAll(filepath.Join(root2, ".cargo-shim"), 0o777)
	os.Symlink(outside, filepath.Join(root2, dirRel))
	if err := Add(root2, Record{FailOpen: 1}, time.Now()); err == nil {
		t.Fatal("added through a symlinked stats directory")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("something was written outside the registry: %v", ents)
	}
}

func TestEmpty(t *testing.T) {
	var r Record
	if !r.Empty() {
		t.Fatal("zero record not empty")
	}
	r.Act("extracted")
	if r.Empty() {
		t.Fatal("a record with an extraction is empty")
	}
}
