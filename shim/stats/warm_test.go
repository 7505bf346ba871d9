package stats

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
)

func openReg(t testing.TB) (string, *safefs.Dir) {
	root := t.TempDir()
	d, err := safefs.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return root, d
}

// Rule: every warm run counts once, across folds and concurrent runs: the
// counter file stays under 2*foldAt, and the total is exact.
func TestWarmCountsAcrossFolds(t *testing.T) {
	defer func(n int64) { foldAt = n }(foldAt)
	foldAt = 16
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = time.Minute
	root, d := openReg(t)
	var wg sync.WaitGroup
	const workers, each = 8, 50
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < each; n++ {
				if err := CountWarm(d, time.Now()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := Read(root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.WarmRuns != workers*each || got.AllRuns != workers*each {
		t.Fatalf("warm runs %d, runs %d; want %d", got.WarmRuns, got.AllRuns, workers*each)
	}
	fi, err := os.Stat(filepath.Join(root, dirRel, myWarm()))
	if err == nil && fi.Size() >= 2*foldAt {
		t.Fatalf("warm counter is %d bytes, not folded", fi.Size())
	}
	// Zero starts the warm count again too.
	if err := Zero(root, time.Now()); err != nil {
		t.Fatal(err)
	}
	CountWarm(d, time.Now())
	if got, _ := Read(root, time.Now()); got.WarmRuns != 1 {
		t.Fatalf("after zero and one warm run: %d", got.WarmRuns)
	}
}

// Rule: a warm counter another uid planted at this uid's name (a symlink,
// a FIFO, its own file) is refused, not written, and not counted as ours.
func TestWarmRefusesPlanted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant as another uid")
	}
	root, d := openReg(t)
	dir := filepath.Join(root, dirRel)
	os.MkdirAll(dir, 0o1777)
	outside := filepath.Join(t.TempDir(), "x")
	os.WriteFile(outside, nil, 0o666)
	p := filepath.Join(dir, myWarm())
	os.Symlink(outside, p)
	if CountWarm(d, time.Now()) == nil {
		t.Fatal("counted through a symlink")
	}
	os.Remove(p)
	syscall.Mkfifo(p, 0o666)
	if CountWarm(d, time.Now()) == nil {
		t.Fatal("counted into a FIFO")
	}
	os.Remove(p)
	os.WriteFile(p, []byte("......"), 0o666)
	os.Chown(p, 65534, 65534)
	if CountWarm(d, time.Now()) == nil {
		t.Fatal("counted into another uid's file")
	}
	// uid 65534's own counter counts for it; the one at root's name not.
	os.WriteFile(filepath.Join(dir, "warm.65534"), []byte("..."), 0o666)
	os.Chown(filepath.Join(dir, "warm.65534"), 65534, 65534)
	if got, _ := Read(root, time.Now()); got.WarmRuns != 3 {
		t.Fatalf("warm runs %d, want uid 65534's 3 only", got.WarmRuns)
	}
	if b, _ := os.ReadFile(outside); len(b) != 0 {
		t.Fatalf("wrote outside: %q", b)
	}
}

// BenchmarkCountWarm is the warm path's added cost: one openat2, fstat,
// write and close on the registry's held descriptor.
func BenchmarkCountWarm(b *testing.B) {
	_, d := openReg(b)
	defer func(n int64) { foldAt = n }(foldAt)
	foldAt = 1 << 40 // the fold is once per 64 Ki runs: measured apart
	CountWarm(d, time.Now())
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if err := CountWarm(d, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// Rule: a warm.<uid>.old another uid planted (held flocked, even) does not
// stop this uid's fold: it holds none of our count, and root renames its
// counter over it; the counter stays under 2*foldAt and every run counts.
func TestWarmFoldsOverPlantedOld(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant as another uid")
	}
	defer func(n int64) { foldAt = n }(foldAt)
	foldAt = 4
	root, d := openReg(t)
	dir := filepath.Join(root, dirRel)
	os.MkdirAll(dir, 0o1777)
	old := filepath.Join(dir, myWarm()+".old")
	os.WriteFile(old, []byte("........"), 0o666)
	os.Chown(old, 65534, 65534)
	held, _ := os.Open(old)
	syscall.Flock(int(held.Fd()), syscall.LOCK_EX)
	defer held.Close()
	const runs = 40
	for n := 0; n < runs; n++ {
		if err := CountWarm(d, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, myWarm())); err == nil && fi.Size() >= 2*foldAt {
		t.Fatalf("warm counter is %d bytes: the planted .old stopped the fold", fi.Size())
	}
	if got, _ := Read(root, time.Now()); got.WarmRuns != runs {
		t.Fatalf("warm runs %d, want %d", got.WarmRuns, runs)
	}
}
