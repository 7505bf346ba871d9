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
	dir := filepath.Join(t.TempDir(), "stats")
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
			if err := Add(dir, rec, now); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := Read(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Runs != n || got.RunsPlanned != n/2 || got.Actions["reextracted"] != n || got.LockWaits.Count != n {
		t.Fatalf("totals after %d concurrent adds: %+v", n, got)
	}
	if got.LockWaits.LongestSeconds != 0.039 {
		t.Fatalf("longest wait %v, want 0.039", got.LockWaits.LongestSeconds)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("stats dir holds %d entries, want the totals and their lock", len(ents))
	}
}

func TestZeroAndGarbage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stats")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, err := Read(dir, t0); err != nil || got.Runs != 0 || !got.Since.Equal(t0) {
		t.Fatalf("nothing recorded: %+v %v", got, err)
	}
	rec := Record{FailOpen: 1}
	if err := Add(dir, rec, t0); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	if err := Zero(dir, t1); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(dir, t1); got.Runs != 0 || got.FailOpen != 0 || !got.Since.Equal(t1) {
		t.Fatalf("after zero: %+v", got)
	}
	// A garbled file is started again, not a failure of every run.
	os.WriteFile(filepath.Join(dir, fileName), []byte("{not json"), 0o666)
	if err := Add(dir, rec, t1); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(dir, t1); got.Runs != 1 || got.FailOpen != 1 {
		t.Fatalf("after garbage: %+v", got)
	}
	// A planted symlink is not followed.
	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, []byte("{}"), 0o644)
	os.Remove(filepath.Join(dir, fileName))
	os.Symlink(target, filepath.Join(dir, fileName))
	if _, err := Read(dir, t1); err == nil {
		t.Fatal("read through a symlink")
	}
	if err := Add(dir, rec, t1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "{}" {
		t.Fatalf("wrote through a symlink: %q", b)
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
