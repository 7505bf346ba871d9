package gitstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// Rule: a fix given a Slice waits for a busy lock that long at most, then
// says ErrInUse (its caller pins and looks at the source again rather
// than wait for another build); a fix hands every lock it took to Keep,
// an exclusive one downgraded, still held: no reaper can take it between
// the fix and the caller's pin.
func TestRepairWaitsASliceAndKeepsItsLocks(t *testing.T) {
	g, s, _ := newCheckout(t)
	ctx := context.Background()
	other, err := lockfile.Acquire(ctx, g.CheckoutLock(s), lockfile.Shared, lockfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Repair(ctx, s, Options{Slice: 20 * time.Millisecond}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Repair with the checkout pinned by another build: %v, want ErrInUse", err)
	}
	other.Release()
	var kept []*lockfile.Lock
	if _, err := g.Repair(ctx, s, Options{Keep: func(l *lockfile.Lock) { kept = append(kept, l) }}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Fatalf("kept %d locks, want the checkout's and the db's", len(kept))
	}
	for _, l := range kept {
		if _, err := lockfile.Try(l.Path(), lockfile.Exclusive); l.Mode() != lockfile.Shared || !lockfile.IsBusy(err) {
			t.Errorf("%s kept %s; taken exclusively by another: %v", l.Path(), l.Mode(), err)
		}
		l.Release()
	}
}
