package gitstore

import (
	"context"
	"path/filepath"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// Pins are a run's shared locks on its git sources' checkout and db locks,
// taken before the first check and held, in this process, through every
// fetch and repair until the holder has them too (then Release). A fix
// that needs one source's locks exclusively unpins just those (Unpin) and
// gets them back downgraded (Keep); all the others stay pinned, so a
// lock-honouring reaper can remove nothing else while a fetch or a
// rebuild takes its seconds.
//
// Deadlock rule: a runner that wants an exclusive git lock never waits
// for it while holding any lock. Two runners pinning the same source and both
// wanting it exclusively would otherwise each wait for the other's shared
// pin. So a fix takes its exclusive locks without waiting
// (Options.NoWait); when one is busy the caller releases every pin
// (Release), has the fix wait with none held for a slice at most
// (Options.Slice), and pins again (Repin), keeping the fix's locks.
// Waiting for shared locks while holding shared ones
// (Pin, Repin) is safe: only an exclusive holder blocks them, and it waits
// for nothing.
type Pins struct {
	paths []string
	held  map[string]*lockfile.Lock
}

// Pin takes the shared locks that pin srcs, waiting as a build does.
func (g Store) Pin(ctx context.Context, srcs []Source, waiting func(string)) (*Pins, error) {
	p := &Pins{paths: lockfile.SortPaths(g.LockPaths(srcs)), held: map[string]*lockfile.Lock{}}
	for _, path := range p.paths {
		if err := lockfile.MkdirShared(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	return p, p.Repin(ctx, waiting)
}

// Repin takes again every pin not held now.
func (p *Pins) Repin(ctx context.Context, waiting func(string)) error {
	var missing []string
	for _, path := range p.paths {
		if p.held[path] == nil {
			missing = append(missing, path)
		}
	}
	set, err := lockfile.AcquireSet(ctx, missing, lockfile.Shared, lockfile.Options{Waiting: waiting})
	if err != nil {
		return err
	}
	for _, l := range set.Locks() {
		p.held[l.Path()] = l
	}
	return nil
}

// Unpin releases the pins on paths (those a fix takes exclusively).
func (p *Pins) Unpin(paths []string) {
	for _, path := range paths {
		if l := p.held[path]; l != nil {
			_ = l.Release()
			delete(p.held, path)
		}
	}
}

// Keep takes l, a fix's lock (downgraded to shared), as the pin of its
// path (see Options.Keep).
func (p *Pins) Keep(l *lockfile.Lock) {
	if old := p.held[l.Path()]; old != nil && old != l {
		_ = old.Release()
	}
	p.held[l.Path()] = l
}

// Release drops every pin.
func (p *Pins) Release() {
	if p == nil {
		return
	}
	for path, l := range p.held {
		_ = l.Release()
		delete(p.held, path)
	}
}
