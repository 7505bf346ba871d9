// Package stats keeps the registry's run counters, as `sccache
// --show-stats` does for sccache: what the drop-in repaired, how long it
// waited for locks, how often it failed open.
//
// Only a run that did something writes the totals. A warm run that found
// everything in place only counts itself: one byte appended to its uid's
// warm counter (warm.go), so the hot path stays a few syscalls. The
// totals are one small file of fixed shape, updated under an exclusive
// flock by write-and-rename: concurrent runs add up, a reader never sees
// half a file, and the size stays bounded however many runs there are.
package stats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/safefs"
)

// Record is what one run did.
type Record struct {
	Planned   bool           // read Cargo.lock afresh (no plan record matched)
	Actions   map[string]int // repairs and extractions by kind word
	LockWaits int
	WaitTotal time.Duration
	WaitMax   time.Duration
	FailOpen  int // warnings after which cargo ran without full protection
	// FailOpenBy counts them by reason word (lock-timeout, registry, ...).
	FailOpenBy map[string]int
	// Removals by gc and the trash, by action word (events.Event.Action).
	Removals map[string]int
}

// Fail counts one fail-open warning for reason.
func (r *Record) Fail(reason string) {
	r.FailOpen++
	if r.FailOpenBy == nil {
		r.FailOpenBy = map[string]int{}
	}
	r.FailOpenBy[reason]++
}

// Act counts one repair or extraction of kind.
func (r *Record) Act(kind string) {
	if r.Actions == nil {
		r.Actions = map[string]int{}
	}
	r.Actions[kind]++
}

// Wait counts one lock wait of d.
func (r *Record) Wait(d time.Duration) {
	r.LockWaits++
	r.WaitTotal += d
	r.WaitMax = max(r.WaitMax, d)
}

// Empty says the run did nothing worth recording.
func (r *Record) Empty() bool {
	return !r.Planned && len(r.Actions) == 0 && r.LockWaits == 0 && r.FailOpen == 0 && len(r.Removals) == 0
}

// Totals is `cargo-shim stats --json` (docs/events-metrics.md).
type Totals struct {
	Since   time.Time `json:"since"`
	Updated time.Time `json:"updated,omitzero"`
	// AllRuns, WarmRuns and Repairs are worked out by Read: every run
	// counted (recorded and warm), the warm ones, and the repairs among
	// the actions (Actions without "extracted", "left" and "rebuilt": a
	// target dir recompiling a repaired crate is not a repair).
	AllRuns     int64            `json:"runs"`
	WarmRuns    int64            `json:"warm_runs"`
	Repairs     int64            `json:"repairs"`
	Runs        int64            `json:"runs_recorded"`
	RunsPlanned int64            `json:"runs_planned"`
	Actions     map[string]int64 `json:"actions"`
	Removals    map[string]int64 `json:"removals"`
	LockWaits   Waits            `json:"lock_waits"`
	FailOpen    int64            `json:"fail_open_warnings"`
	FailOpenBy  map[string]int64 `json:"fail_open_by_reason"`
	// WarmBase is added to the warm counters' sizes: what folding moved
	// out of them, less what they held when the totals were zeroed.
	WarmBase int64 `json:"warm_base"`
}

// Waits sums lock waits; seconds as fractions.
type Waits struct {
	Count          int64   `json:"count"`
	TotalSeconds   float64 `json:"total_seconds"`
	LongestSeconds float64 `json:"longest_seconds"`
}

const (
	fileName = "totals.json"
	lockName = "totals.lock"
	// maxFile bounds what a read takes in: the file has a fixed shape, a
	// larger one was not written by us.
	maxFile = 64 << 10
)

// lockWait bounds how long a run waits to add its record: stats are not
// worth holding up a build. (A variable for the tests, which measure
// contention, not the give-up.)
var lockWait = 2 * time.Second

// dirRel is where a registry keeps its stats, relative to its root.
const dirRel = ".cargo-shim/stats"

// Add adds rec to the totals of the registry at root.
func Add(root string, rec Record, now time.Time) error {
	return update(root, func(t *Totals) {
		t.Runs++
		if rec.Planned {
			t.RunsPlanned++
		}
		for k, n := range rec.Actions {
			t.Actions[k] += int64(n)
		}
		t.LockWaits.Count += int64(rec.LockWaits)
		t.LockWaits.TotalSeconds += rec.WaitTotal.Seconds()
		t.LockWaits.LongestSeconds = max(t.LockWaits.LongestSeconds, rec.WaitMax.Seconds())
		t.FailOpen += int64(rec.FailOpen)
		addAll(t.FailOpenBy, rec.FailOpenBy)
		addAll(t.Removals, rec.Removals)
		t.Updated = now
	}, now)
}

// AddRemovals adds what an admin command removed (by action word); it is
// not a run of the drop-in.
func AddRemovals(root string, removals map[string]int, now time.Time) error {
	if len(removals) == 0 {
		return nil
	}
	return update(root, func(t *Totals) {
		addAll(t.Removals, removals)
		t.Updated = now
	}, now)
}

func addAll(to map[string]int64, from map[string]int) {
	for k, n := range from {
		to[k] += int64(n)
	}
}

// Zero starts the totals again from now (the warm counters too: their
// current sizes become the base's negative).
func Zero(root string, now time.Time) error {
	return updateDir(root, func(d *safefs.Dir, t *Totals) {
		*t = fresh(now)
		t.WarmBase = -warmCounted(d)
	}, now)
}

// Read returns the totals; none recorded yet reads as zero since now.
func Read(root string, now time.Time) (Totals, error) {
	r, err := safefs.OpenRoot(root)
	if err != nil {
		return Totals{}, err
	}
	defer r.Close()
	t, err := load(r, dirRel+"/"+fileName, now)
	if errors.Is(err, fs.ErrNotExist) {
		t, err = fresh(now), nil
	}
	if err != nil {
		return t, err
	}
	if d, err := r.OpenDir(dirRel); err == nil {
		t.WarmRuns = t.WarmBase + warmCounted(d)
		d.Close()
	}
	t.WarmRuns = max(t.WarmRuns, 0)
	t.AllRuns = t.Runs + t.WarmRuns
	t.Repairs = 0
	for k, n := range t.Actions {
		if k != "extracted" && k != "left" && k != "rebuilt" {
			t.Repairs += n
		}
	}
	return t, nil
}

func fresh(now time.Time) Totals {
	return Totals{Since: now, Actions: map[string]int64{}, Removals: map[string]int64{}, FailOpenBy: map[string]int64{}}
}

// update changes the totals under the stats lock. Every path is resolved
// beneath the registry's descriptor (safefs): a symlink another uid planted
// in the registry never sends the write outside it.
func update(root string, change func(*Totals), now time.Time) error {
	return updateDir(root, func(_ *safefs.Dir, t *Totals) { change(t) }, now)
}

// updateDir is update giving change the stats directory too.
func updateDir(root string, change func(*safefs.Dir, *Totals), now time.Time) error {
	r, err := safefs.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	// The lock too resolves beneath the registry (a no-op when the run
	// declared it already), and its open never blocks: a FIFO planted at
	// totals.lock is refused, naming it.
	if err := lockfile.Beneath(root); err != nil {
		return err
	}
	d, err := r.MkdirAll(dirRel, safefs.Shared)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), lockWait)
	defer cancel()
	lk, err := lockfile.Acquire(ctx, filepath.Join(root, dirRel, lockName), lockfile.Exclusive, lockfile.Options{})
	if err != nil {
		return err
	}
	defer lk.Release()
	t, err := load(d, fileName, now)
	if err != nil {
		// Missing, or not ours (garbled, planted): start again rather than
		// fail every run that has something to add.
		t = fresh(now)
	}
	change(d, &t)
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	// A fresh file renamed over the old: readers see the old totals or
	// the new, never part of a file; every runner uid adds to them.
	return d.WriteFile(fileName, append(b, '\n'), 0o666)
}

func load(d *safefs.Dir, rel string, now time.Time) (Totals, error) {
	b, err := d.ReadFile(rel, maxFile)
	if err != nil {
		return Totals{}, err
	}
	t := fresh(now)
	if err := json.Unmarshal(b, &t); err != nil {
		return Totals{}, fmt.Errorf("%s: %w", d.Join(rel), err)
	}
	for _, m := range []*map[string]int64{&t.Actions, &t.Removals, &t.FailOpenBy} {
		if *m == nil {
			*m = map[string]int64{}
		}
	}
	return t, nil
}
