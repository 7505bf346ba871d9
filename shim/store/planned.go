package store

import (
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// This file is what the drop-in's run asks of the store: the plan for a
// Cargo.lock, the lock files that pin it, and the checks of the planned set.

// LoadPlan is step 2 of a run: the plan record for these Cargo.lock bytes
// while the registry still has the shape it describes, else a plan built
// from them (lockPath names the file in errors).
func (r Registry) LoadPlan(lockData []byte, lockPath string) (*Plan, error) {
	return r.LoadPlanFrom(lockData, lockPath, Trusted)
}

// LoadPlanFrom is LoadPlan for Cargo.lock bytes from src: a Hint's plan
// carries no checksum (see trust.go).
func (r Registry) LoadPlanFrom(lockData []byte, lockPath string, src Source) (*Plan, error) {
	if p, ok := r.loadPlan(lockData, src); ok {
		return p, nil
	}
	return r.buildPlan(lockData, lockPath, src)
}

// Cached is true when the plan came from a plan record still valid.
func (p *Plan) Cached() bool { return p.cached }

// Skipped describes the Cargo.lock entries left out because cargo would
// not accept their name or version; a plan with any is never recorded.
func (p *Plan) Skipped() []string { return p.skipped }

// Crates is how many registry packages the Cargo.lock names.
func (p *Plan) Crates() int { return len(p.crates) }

// Distrust makes the next CheckPlan check every instance in full and mark
// the plan for recording: after a repair the recorded stamps are stale.
func (p *Plan) Distrust() { p.cached = false }

// LockPaths is what a run pins: every instance, and every cold crate under
// every regdir with an index (where cargo will put it).
func (r Registry) LockPaths(p *Plan) []string { return r.lockPaths(p) }

// CrateOfLock names the crate a lock path of p belongs to, for messages
// (only called when a message needs it: most runs never wait).
func (r Registry) CrateOfLock(p *Plan, path string) string {
	if p != nil {
		for _, i := range p.instances {
			if r.LockPath(i) == path {
				return i.Crate.String()
			}
		}
		for _, c := range p.cold {
			for _, d := range p.indexed {
				if r.LockPath(Instance{Crate: c, Regdir: d}) == path {
					return c.String()
				}
			}
		}
	}
	return path
}

// RecordPlan fills the plan's stamps from the per-crate states (all just
// verified) and writes the plan record.
func (r Registry) RecordPlan(p *Plan) error { return r.savePlanFromStates(p) }

// CheckOptions tune CheckPlan and CheckAll.
type CheckOptions struct {
	Level   Level
	Offline bool
	// Workers bounds the parallel checks; 0 is one per core, more on a
	// network filesystem (lockfile.Workers).
	Workers int
	// RecordFailed is told when a healthy instance's state could not be
	// recorded (a read-only registry is still checked).
	RecordFailed func(Instance, error)
	// Done is called after each instance, from any worker, for progress.
	Done func()
	// Verified is called for each instance a full check found healthy,
	// before its state is recorded: a run on a group-shared registry gives
	// back the group bits cargo took from tar directory entries.
	Verified func(Instance)
}

// CheckPlan checks every planned instance; the recorded stamps of a cached
// plan make the warm case a few lstats per crate. fresh is true when
// anything was looked at beyond the plan record, which should then be
// recorded again (RecordPlan).
func (r Registry) CheckPlan(p *Plan, o CheckOptions) (findings []Finding, fresh bool) {
	out := make([]Finding, len(p.instances))
	var unsure atomic.Bool
	r.at = r.openStater(p.regdirs)
	defer r.at.close()
	lockfile.Parallel(r.workers(o), len(p.instances), func(n int) {
		i := p.instances[n]
		if p.viaState[i] && p.cached && o.Level == Fast {
			if f, sure := r.stateCheck(i, Fast); sure {
				out[n] = f
				o.done()
				return
			}
		}
		if s := p.stamps[i]; s != nil && p.cached && o.Level == Fast {
			if f, sure := r.fastCheck(i, s, Fast); sure {
				out[n] = f
				o.done()
				return
			}
		}
		unsure.Store(true)
		out[n] = r.checkOne(i, o)
	})
	return out, unsure.Load() || !p.cached
}

// CheckAll checks instances in parallel and records the state of those a
// full check found healthy.
func (r Registry) CheckAll(instances []Instance, o CheckOptions) []Finding {
	var regdirs []string
	seen := map[string]bool{}
	for _, i := range instances {
		if !seen[i.Regdir] {
			seen[i.Regdir] = true
			regdirs = append(regdirs, i.Regdir)
		}
	}
	r.at = r.openStater(regdirs)
	defer r.at.close()
	out := make([]Finding, len(instances))
	lockfile.Parallel(r.workers(o), len(instances), func(n int) { out[n] = r.checkOne(instances[n], o) })
	return out
}

// workers is how many checks run at once: one per core where they are
// syscall-bound, more where each syscall waits on a server.
func (r Registry) workers(o CheckOptions) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return lockfile.Workers(r.Root)
}

// checkOne checks one instance and records its state when a full check
// found it healthy. Under the shared lock, no repair can change it
// meanwhile; without it, a repair swaps in a directory whose stamps differ.
func (r Registry) checkOne(i Instance, o CheckOptions) Finding {
	f := r.Check(i, o.Level, o.Offline)
	if o.Verified != nil && f.fresh && f.Verdict == Healthy && f.ExtractionOK {
		o.Verified(f.Instance)
	}
	if err := r.RecordIfVerified(f); err != nil && o.RecordFailed != nil {
		o.RecordFailed(f.Instance, err)
	}
	o.done()
	return f
}

func (o CheckOptions) done() {
	if o.Done != nil {
		o.Done()
	}
}

// InstanceOfLock is the crate whose lock file is path, if path is one.
func (r Registry) InstanceOfLock(path string) (Instance, bool) {
	dir, file := filepath.Split(path)
	regdir := filepath.Base(dir)
	stem, isLock := strings.CutSuffix(file, ".lock")
	name, version, ok := splitNameVersion(stem)
	if !isLock || !ok || filepath.Clean(dir) != filepath.Join(r.ShimDir(), "locks", regdir) {
		return Instance{}, false
	}
	return Instance{Crate: Crate{Name: name, Version: version}, Regdir: regdir}, true
}

// Cold is how many planned crates are in no regdir yet: cargo will
// download and unpack them.
func (p *Plan) Cold() int { return len(p.cold) }

// Missing counts the planned crates that are now in no regdir, neither
// extracted nor cached: the cold ones that are still cold, and instances
// removed since the plan was made (gc between the plan and the pin). Called
// with the set pinned, what it finds present stays until the build is done.
func (r Registry) Missing(p *Plan) int {
	regdirs := r.Regdirs()
	n := 0
	for _, c := range p.cold {
		if len(r.Locate(c, regdirs)) == 0 {
			n++
		}
	}
	for _, i := range p.instances {
		if len(r.Locate(i.Crate, []string{i.Regdir})) == 0 {
			n++
		}
	}
	return n
}
