package admin

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/store"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
)

// GCOptions: crates unused for longer than MaxAge lose their extraction;
// with CrateMaxAge set, those unused for longer than that lose their tarball.
type GCOptions struct {
	MaxAge      time.Duration
	CrateMaxAge time.Duration
	Tarballs    bool // CrateMaxAge was given
	DryRun      bool
}

// GCEntry is one crate gc removed, would remove, or kept because busy.
type GCEntry struct {
	Crate    string    `json:"crate"`
	Version  string    `json:"version"`
	Regdir   string    `json:"regdir"`
	What     string    `json:"what"` // "extraction", "tarball", "extraction+tarball", "temp"
	Path     string    `json:"path"`
	Bytes    int64     `json:"bytes"`
	LastUsed time.Time `json:"last_used"`
}

// GCReport is `cargo-shim gc --json`.
type GCReport struct {
	Registry     string    `json:"registry"`
	DryRun       bool      `json:"dry_run"`
	Removed      []GCEntry `json:"removed"`
	Busy         []GCEntry `json:"busy"`
	PlanRecords  int       `json:"plan_records_removed"`
	LockFiles    int       `json:"lock_files_removed"`
	StateRecords int       `json:"state_records_removed"`
	// FreedBytes is what the entries and plan records took on disk;
	// TrashFreedBytes what earlier runs had left in the trash. Each byte is
	// counted once: TotalFreedBytes is their sum, what du sees go.
	FreedBytes      int64 `json:"freed_bytes"`
	TrashFreedBytes int64 `json:"trash_freed_bytes"`
	TotalFreedBytes int64 `json:"total_freed_bytes"`
	// TrashKeptBytes: trash entries of crates a build pins, kept until
	// the pins end (a build that pinned a crate before a repair swapped
	// it out may still read the old directory).
	TrashKeptBytes int64 `json:"trash_kept_bytes,omitempty"`
	// ColdBuild: a build on crates not in the registry yet was running, so
	// no crate was removed.
	ColdBuild bool `json:"cold_build_running"`
	// Git is the git directory beside the registry, when there is one.
	Git *GitGCReport `json:"git,omitempty"`
}

// GC is the lock-aware replacement for a TTL reaper and cargo's auto-GC:
// the store decides and removes each crate under its exclusive lock, taken
// without waiting, so a crate any running build holds is kept, whatever the
// age. A dry run takes the same steps and removes nothing.
func GC(reg store.Registry, o GCOptions, now time.Time) (*GCReport, error) {
	groupshare.ApplyUmask(reg.Root) // the trash it may create, as the drop-in makes it
	rep := &GCReport{Registry: reg.Root, DryRun: o.DryRun, Removed: []GCEntry{}, Busy: []GCEntry{}}
	pol := store.GCPolicy{MaxAge: o.MaxAge, CrateMaxAge: o.CrateMaxAge, Tarballs: o.Tarballs, DryRun: o.DryRun, Now: now}
	var errs *multierror.Error
	// What earlier runs left in the trash; what this run moves there is
	// counted in its entry, not again when the trash is emptied.
	usage := reg.TrashUsage()
	rep.TrashKeptBytes = reg.TrashKept()
	rep.TrashFreedBytes = usage - rep.TrashKeptBytes
	cold, err := coldLock(reg, o.DryRun)
	switch {
	case lockfile.IsBusy(err):
		// A build whose crates cargo is downloading into places no lock
		// names yet: any crate may be one of them.
		rep.ColdBuild = true
	case err != nil:
		errs = multierror.Append(errs, err)
	default:
		for _, i := range reg.AllInstances() {
			rm, err := reg.Collect(i, pol)
			errs = rep.add(gcEntry(reg, i, rm), err, errs)
		}
		cold.Release()
	}
	temps := reg.StaleTemps(time.Hour)
	paths := make([]string, 0, len(temps))
	for p := range temps {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		i := temps[p]
		n, err := reg.CollectTemp(p, i, o.DryRun)
		e := GCEntry{Crate: i.Name, Version: i.Version, Regdir: i.Regdir, What: "temp", Path: p, Bytes: n}
		errs = rep.add(e, err, errs)
	}
	orphans, err := reg.SweepOrphans(o.DryRun)
	rep.LockFiles, rep.StateRecords = orphans.LockFiles, orphans.StateRecords
	if err != nil {
		errs = multierror.Append(errs, err)
	}
	plans, planBytes := reg.RemoveStalePlans(max(o.MaxAge, time.Hour), o.DryRun)
	rep.PlanRecords = plans
	rep.FreedBytes += planBytes
	if !o.DryRun {
		if beforeEmptyTrash != nil {
			beforeEmptyTrash()
		}
		n, err := reg.EmptyTrash(0)
		// Pins may have ended (or begun) while gc ran: what is kept is
		// what the trash still holds for pinned crates now.
		rep.TrashKeptBytes = reg.TrashKept()
		rep.TrashFreedBytes = min(n, max(usage-rep.TrashKeptBytes, 0))
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("cannot empty %s: %w", reg.TrashDir(), err))
		}
	}
	rep.TotalFreedBytes = rep.FreedBytes + rep.TrashFreedBytes
	return rep, errs.ErrorOrNil()
}

// beforeEmptyTrash, when set by a test, runs just before gc empties the
// trash: where a build that pinned a crate when gc began may have ended.
var beforeEmptyTrash func()

// coldLock keeps builds that download crates out while gc removes any (a
// dry run takes no lock).
func coldLock(reg store.Registry, dry bool) (*lockfile.Lock, error) {
	if dry {
		return nil, nil
	}
	return lockfile.Try(reg.ColdLock(), lockfile.Exclusive)
}

// gcEntry describes what Collect removed, would remove, or found busy; What
// is empty when nothing of the crate was due.
func gcEntry(reg store.Registry, i store.Instance, rm store.Removal) GCEntry {
	e := GCEntry{Crate: i.Name, Version: i.Version, Regdir: i.Regdir, Path: reg.Extraction(i), Bytes: rm.Bytes, LastUsed: rm.LastUse}
	switch {
	case rm.Extraction && rm.Tarball:
		e.What = "extraction+tarball"
	case rm.Tarball:
		e.What, e.Path = "tarball", reg.Tarball(i)
	case rm.Extraction:
		e.What = "extraction"
	}
	return e
}

// add files one outcome of the store's gc into the report.
func (rep *GCReport) add(e GCEntry, err error, errs *multierror.Error) *multierror.Error {
	switch {
	case errors.Is(err, store.ErrInUse):
		rep.Busy = append(rep.Busy, e)
	case err != nil:
		return multierror.Append(errs, fmt.Errorf("%s v%s (%s): %w", e.Crate, e.Version, e.Path, err))
	case e.What != "":
		rep.Removed = append(rep.Removed, e)
		rep.FreedBytes += e.Bytes
	}
	return errs
}
