package integration

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
)

// reap is one pass of a reaper that honours the shim's locks: each
// checkout and db whose lock it gets exclusively without waiting is
// deleted (as an age-based cleanup of old checkouts and dbs would), the
// lock released after. It returns how many it deleted.
func (w *GitWorld) reap() int {
	n := 0
	locks, _ := filepath.Glob(filepath.Join(w.Shared, ".cargo-shim", "locks", "checkouts", "*", "*.lock"))
	for _, l := range locks {
		ident, commit := filepath.Base(filepath.Dir(l)), strings.TrimSuffix(filepath.Base(l), ".lock")
		n += w.reapUnder(l, func() []string {
			var out []string
			m, _ := filepath.Glob(filepath.Join(w.Shared, "checkouts", ident, "*"))
			for _, co := range m {
				if strings.HasPrefix(commit, filepath.Base(co)) {
					out = append(out, co)
				}
			}
			return out
		})
	}
	locks, _ = filepath.Glob(filepath.Join(w.Shared, ".cargo-shim", "locks", "db", "*.lock"))
	for _, l := range locks {
		db := filepath.Join(w.Shared, "db", strings.TrimSuffix(filepath.Base(l), ".lock"))
		n += w.reapUnder(l, func() []string { return []string{db} })
	}
	return n
}

func (w *GitWorld) reapUnder(lock string, paths func() []string) int {
	l, err := lockfile.Try(lock, lockfile.Exclusive)
	if err != nil {
		return 0
	}
	defer l.Release()
	n := 0
	for _, p := range paths() {
		if _, err := os.Lstat(p); err == nil && os.RemoveAll(p) == nil {
			n++
		}
	}
	return n
}

// Rule: a reaper that honours the shim's locks may delete git checkouts
// and dbs at any moment while builds run through the shim: no build
// fails (a build pins what it uses; what is gone before the pin is
// fetched or rebuilt under the exclusive locks). Plain cargo, which takes
// no lock, is measured with the same reaper in the same run. The reaper's
// first pass runs before the builds start (everything deleted once):
// builds that pin from their start can leave it no other moment, and a
// reaper that deleted nothing proves nothing.
func TestGitLockHonouringReaper(t *testing.T) {
	const runners, builds = 3, 3
	measure := func(viaShim bool) (failed int, reaped int64) {
		w := NewGitWorld(t)
		if r := w.Build(w.Workspace(), w.Home(), true).Wait(); r.Code != 0 {
			t.Fatalf("warm-up: %s", r)
		}
		stop := make(chan struct{})
		var n atomic.Int64
		// The warm-up's holder may still hold its pins for a moment
		// after its cargo exited.
		for n.Load() == 0 {
			n.Add(int64(w.reap()))
			time.Sleep(10 * time.Millisecond)
		}
		var reaper sync.WaitGroup
		reaper.Add(1)
		go func() {
			defer reaper.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					n.Add(int64(w.reap()))
				}
			}
		}()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < runners; i++ {
			home, work := w.Home(), w.Workspace()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; b < builds; b++ {
					if r, killed := boundedWait(w.Build(work, home, viaShim)); r.Code != 0 {
						mu.Lock()
						failed++
						mu.Unlock()
						t.Logf("shim=%v: build under the reaper failed (killed at the %s bound: %v): %s", viaShim, gitBound, killed, lastLines(r.Stderr, 3))
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		reaper.Wait()
		return failed, n.Load()
	}
	start := time.Now()
	plain, plainReaped := measure(false)
	plainTook, start := time.Since(start).Round(time.Second), time.Now()
	shim, shimReaped := measure(true)
	t.Logf("lock-honouring reaper, %d runners x %d builds: plain cargo failed %d of %d (%d deleted, %s), through the shim %d of %d (%d deleted, %s)",
		runners, builds, plain, runners*builds, plainReaped, plainTook, shim, runners*builds, shimReaped, time.Since(start).Round(time.Second))
	if shim != 0 {
		t.Errorf("%d builds through the shim failed under a lock-honouring reaper", shim)
	}
	if shimReaped == 0 {
		t.Errorf("the reaper deleted nothing: the test proves nothing")
	}
}

// Rule: runners that pin the same git sources and find, at the same
// moment, the same checkouts missing (then also a db gone) all pass, none
// waiting for another for ever: a runner waits for an exclusive git lock
// holding no pin at all (gitstore.Pins), so two runners' shared pins never
// each block the other's exclusive lock.
func TestGitPinnedRunnersFixTogether(t *testing.T) {
	const runners, rounds = 4, 2
	w := NewGitWorld(t)
	if r := w.Build(w.Workspace(), w.Home(), true).Wait(); r.Code != 0 {
		t.Fatalf("warm-up: %s", r)
	}
	for round := 0; round < rounds; round++ {
		if err := os.RemoveAll(filepath.Join(w.Shared, "checkouts")); err != nil {
			t.Fatal(err)
		}
		// Round 0: checkouts only, each rebuilt from its db by a Repair
		// of its own; round 1: a db too, fetched by one cargo fetch.
		if round == 1 {
			if err := os.RemoveAll(w.DB("gbranch")); err != nil {
				t.Fatal(err)
			}
		}
		procs := make([]*loopback.Proc, runners)
		for i := range procs {
			procs[i] = w.Build(w.Workspace(), w.Home(), true)
		}
		for _, p := range procs {
			r, killed := boundedWait(p)
			if killed {
				t.Errorf("round %d: a build still waited after %s (deadlock?): %s", round, gitBound, lastLines(r.Stderr, 3))
			} else if r.Code != 0 {
				t.Errorf("round %d: build failed: %s", round, lastLines(r.Stderr, 3))
			}
		}
	}
}

// Rule: a runner that finds a git source broken while another build holds
// it pinned waits for the exclusive lock only until the source is fine
// again, not until that build ends: it waits in slices, holding no lock,
// and between them pins and looks at the source again. A fix that had to
// wait keeps its locks as its pins (no gap for a reaper), so a runner
// queued behind it for the same source would otherwise wait for the
// fixer's whole build. Here the test is that other build: it holds the
// checkout's lock shared, the checkout moved away until the runner says
// it waits, then put back; the lock is held until the runner ends.
func TestGitWaiterGoesOnOnceFixed(t *testing.T) {
	w, _, _ := NewWarmGitWorld(t)
	co := w.Checkout("grev")
	held := w.holdShared(filepath.Join("checkouts", filepath.Base(filepath.Dir(co)), "*.lock"))
	defer held.Release()
	aside := filepath.Join(filepath.Dir(w.Shared), "aside")
	if err := os.Rename(co, aside); err != nil {
		t.Fatal(err)
	}
	p := w.Build(w.Workspace(), w.Home(), true)
	done := make(chan struct{})
	var r loopback.Result
	var killed bool
	go func() { r, killed = boundedWait(p); close(done) }()
	for waiting := false; !waiting; {
		select {
		case <-done:
			t.Fatalf("the build ended before it waited for the checkout (killed: %v): %s", killed, r)
		case <-time.After(50 * time.Millisecond):
			waiting = strings.Contains(p.StderrSoFar(), "waiting for lock on git dependency")
		}
	}
	if err := os.Rename(aside, co); err != nil {
		t.Fatal(err)
	}
	<-done
	if r.Code != 0 {
		t.Fatalf("the build waited for the other build, not for the fix (killed at the %s bound: %v): %s", gitBound, killed, lastLines(r.Stderr, 3))
	}
}
