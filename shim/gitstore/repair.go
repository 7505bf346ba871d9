package gitstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"golang.org/x/sys/unix"
)

// ErrInUse: the checkout's lock is held and the caller must not wait (a
// shim under another shim's cargo, whose holder may be the one holding it).
var ErrInUse = errors.New("in use by another build")

// Options tune a repair or a fetch.
type Options struct {
	NoWait  bool
	Waiting func(path string)
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
	defer releaseAll(set)
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
		l, err := lockfile.Acquire(ctx, paths[busy], modes[busy], lockfile.Options{Waiting: opt.Waiting})
		if err != nil {
			return nil, err
		}
		_ = l.Release()
	}
}

func releaseAll(ls []*lockfile.Lock) {
	for _, l := range ls {
		_ = l.Release()
	}
}

// rebuild checks s out from its db into a temporary directory beside co,
// verifies it, and swaps it in.
func (g Store) rebuild(ctx context.Context, s Source, co string) error {
	if err := os.MkdirAll(filepath.Dir(co), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(co), fmt.Sprintf(".cargo-shim-tmp-%s.%d.%d", filepath.Base(co), time.Now().UnixNano(), os.Getpid()))
	defer os.RemoveAll(tmp)
	if err := g.checkoutInto(ctx, s, tmp, 0); err != nil {
		return err
	}
	t, err := tree(ctx, g.DB(s), s.Commit)
	if err != nil {
		return err
	}
	if v, p := g.checkCheckout(ctx, s, tmp, t, true, 0); v != Healthy {
		return fmt.Errorf("the rebuilt checkout does not match: %s", p)
	}
	g.ForgetStamps(s)
	return g.swapIn(tmp, co)
}

// checkoutInto does what cargo's GitDatabase::copy_to does, with the git
// CLI: a local clone of the db (objects hard-linked), the commit checked
// out with core.autocrlf off, submodules from their own dbs, then an empty
// .cargo-ok.
func (g Store) checkoutInto(ctx context.Context, s Source, dir string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("submodules nested deeper than %d", maxDepth)
	}
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
		sub := filepath.Join(dir, sm.Path)
		if err := os.Remove(sub); err != nil && !os.IsNotExist(err) {
			return err
		}
		if err := g.checkoutInto(ctx, sm.Src, sub, depth+1); err != nil {
			return fmt.Errorf("submodule %s: %w", sm.Path, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, ".cargo-ok"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// swapIn puts tmp at co in one rename: exchanged with the old checkout,
// which then goes to the trash, or renamed into place when there is none.
func (g Store) swapIn(tmp, co string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, co, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		return unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, co, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		return err
	}
	// tmp is now the old checkout; the deferred RemoveAll in rebuild
	// removes it if it cannot go to the trash.
	_ = g.toTrash(tmp)
	return nil
}
