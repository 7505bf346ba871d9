package gitstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/safefs"
	"golang.org/x/sys/unix"
)

// ErrInUse: the checkout's lock is held and the caller must not wait (a
// shim under another shim's cargo, whose holder may be the one holding it).
var ErrInUse = errors.New("in use by another build")

// Options tune a repair or a fetch.
type Options struct {
	NoWait bool
	// Slice, when set, bounds how long a busy lock is waited for: then
	// ErrInUse. The caller looks at the source again between slices (see
	// shim's fixOnceSettled) instead of waiting out another runner's build.
	Slice   time.Duration
	Waiting func(path string)
	// Report is told what FetchMissing did to a damaged db, or left.
	Report func(Action)
	// Keep, when set, is given each lock a Repair or a FetchMissing took,
	// an exclusive one downgraded to shared, instead of released: the
	// caller's pin (see Pins), with no moment at which a lock-honouring
	// reaper could take the lock between the work and the pin (the caller
	// may hold no pin at all then: it waited for the locks).
	Keep func(*lockfile.Lock)
}

// Action is what a repair did.
type Action struct {
	Verb   string // "Rebuilt" when the checkout was rebuilt; "" when nothing was needed
	Detail string
	Left   bool // could not be repaired here (Detail says why)
}

// Repair rebuilds s's checkout from its db when a check made under the
// checkout's exclusive lock (and the db's shared one: nobody swaps the db
// away while it is read) finds it missing or broken. Lock order is the
// paths' sorted order everywhere (checkouts/ before db/), so no cycle.
// The new checkout is built beside the old one and swapped in by one
// rename; the old one goes to the trash. No network is used: a db without
// the commit is left to cargo.
func (g Store) Repair(ctx context.Context, s Source, opt Options) (Action, error) {
	set, err := g.lock(ctx, []string{g.CheckoutLock(s), g.DBLock(s)}, []lockfile.Mode{lockfile.Exclusive, lockfile.Shared}, opt)
	if err != nil {
		return Action{}, err
	}
	defer unlock(set, opt)
	f := g.Check(ctx, s, Deep)
	switch f.Verdict {
	case Healthy:
		return Action{}, nil
	case NeedsFetch:
		return Action{Left: true, Detail: fmt.Sprintf("%s: %s; cargo fetches it (online)", s, f.Problem)}, nil
	}
	if err := g.rebuild(ctx, s, f.Checkout); err != nil {
		return Action{Left: true, Detail: fmt.Sprintf("%s: %s: cannot rebuild it from %s: %v", s, f.Problem, g.DB(s), err)}, nil
	}
	return Action{Verb: "Rebuilt", Detail: fmt.Sprintf("git checkout %s from its db (%s)", f.Checkout, f.Problem)}, nil
}

// lock takes each path in its mode. The store's rule for exclusive locks
// holds here too: nobody waits for a lock while holding another. So every
// lock is tried; when one is busy, all are released, that one alone is
// waited for (then dropped), and the set is tried again.
func (g Store) lock(ctx context.Context, paths []string, modes []lockfile.Mode, opt Options) ([]*lockfile.Lock, error) {
	for _, p := range paths {
		if err := lockfile.MkdirShared(filepath.Dir(p)); err != nil {
			return nil, err
		}
	}
	wctx := ctx
	if opt.Slice > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, opt.Slice)
		defer cancel()
	}
	for {
		var held []*lockfile.Lock
		busy := -1
		for n, p := range paths {
			l, err := lockfile.Try(p, modes[n])
			if lockfile.IsBusy(err) {
				busy = n
				break
			}
			if err != nil {
				releaseAll(held)
				return nil, err
			}
			held = append(held, l)
		}
		if busy < 0 {
			return held, nil
		}
		releaseAll(held)
		if opt.NoWait {
			return nil, ErrInUse
		}
		l, err := lockfile.Acquire(wctx, paths[busy], modes[busy], lockfile.Options{Waiting: opt.Waiting})
		if err != nil && ctx.Err() == nil && wctx.Err() != nil {
			return nil, ErrInUse
		}
		if err != nil {
			return nil, err
		}
		_ = l.Release()
	}
}

// unlock ends a repair's or a fetch's locks: each goes to opt.Keep when
// the caller pins it (an exclusive one downgraded first); otherwise, or
// when a downgrade fails, it is released.
func unlock(ls []*lockfile.Lock, opt Options) {
	for _, l := range ls {
		if opt.Keep != nil && (l.Mode() == lockfile.Shared || l.Downgrade() == nil) {
			opt.Keep(l)
			continue
		}
		_ = l.Release()
	}
}

func releaseAll(ls []*lockfile.Lock) {
	for _, l := range ls {
		_ = l.Release()
	}
}

// rebuild checks s out from its db into a stage directory of its own (see
// stageDir), verifies it, and swaps it in (see stageAndSwap).
func (g Store) rebuild(ctx context.Context, s Source, co string) error {
	rel, err := g.rel(co)
	if err != nil {
		return err
	}
	return g.stageAndSwap(rel, func(stage *safefs.Dir, name string) error {
		if err := g.checkoutInto(ctx, s, stage, name, 0); err != nil {
			return err
		}
		t, err := tree(ctx, g.DB(s), s.Commit)
		if err != nil {
			return err
		}
		if v, p := g.checkCheckout(ctx, s, stage.Join(name), t, true, 0); v != Healthy {
			return fmt.Errorf("the rebuilt checkout does not match: %s", p)
		}
		g.ForgetStamps(s)
		return nil
	})
}

// checkoutInto does what cargo's GitDatabase::copy_to does, with the git
// CLI: a local clone of the db (objects hard-linked), the commit checked
// out with core.autocrlf off, submodules from their own dbs, then an empty
// .cargo-ok. Everything is written inside stage (this uid's, 0700): git is
// given its path; what this code removes or creates there is resolved
// beneath stage's descriptor, never through a symlink the checked-out tree
// may hold.
func (g Store) checkoutInto(ctx context.Context, s Source, stage *safefs.Dir, rel string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("submodules nested deeper than %d", maxDepth)
	}
	dir := stage.Join(rel)
	if _, err := gitOut(ctx, "", "clone", "-q", "--local", "--no-checkout", g.DB(s), dir); err != nil {
		return err
	}
	if _, err := gitOut(ctx, dir, "config", "core.autocrlf", "false"); err != nil {
		return err
	}
	if _, err := gitOut(ctx, dir, "checkout", "-q", "--detach", s.Commit); err != nil {
		return err
	}
	t, err := tree(ctx, g.DB(s), s.Commit)
	if err != nil {
		return err
	}
	subs, unnamed, err := submodules(ctx, g.DB(s), s, t)
	if err != nil {
		return err
	}
	if len(unnamed) > 0 {
		return fmt.Errorf("submodule %s: its URL names no db the shim can find; left to cargo", unnamed[0])
	}
	for _, sm := range subs {
		if sm.Skip {
			continue
		}
		if _, err := tree(ctx, g.DB(sm.Src), sm.Src.Commit); err != nil {
			return fmt.Errorf("submodule %s: its db %s does not hold %s (cargo fetches it, online)", sm.Path, g.DB(sm.Src), sm.Src.Commit)
		}
		sub := rel + "/" + sm.Path
		if err := stage.Remove(sub); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := g.checkoutInto(ctx, sm.Src, stage, sub, depth+1); err != nil {
			return fmt.Errorf("submodule %s: %w", sm.Path, err)
		}
	}
	f, err := stage.Create(rel+"/.cargo-ok", 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// swapIn puts stage/tmp at parent/name in one rename: exchanged with the
// old checkout or db (which is then in the stage, removed with it), or
// renamed into place when there is none. A filesystem without renameat2's
// flags (GlusterFS's FUSE client says EINVAL) gets two plain renames
// between the same descriptors: the old one into the stage, the new one
// in. The name is then absent for a moment, which no runner through the
// shim sees (the caller holds the exclusive lock); a cargo outside the
// shim that fills it meanwhile keeps what it made (a plain rename of a
// directory replaces only an empty one).
func swapIn(stage *safefs.Dir, tmp string, parent *safefs.Dir, name string) error {
	err := stage.Exchange(tmp, parent, name)
	switch {
	case errors.Is(err, unix.ENOENT):
		return renameAside(stage, tmp, parent, name)
	case noFlags(err):
		if err := parent.Rename(name, stage, "old"); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return renameAside(stage, tmp, parent, name)
	}
	return err
}

// noFlags: the filesystem does not implement renameat2's flags.
func noFlags(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)
}
