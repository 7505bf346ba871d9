package admin

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/cargo-shim/cargo-shim/shim/store"
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
	Registry    string    `json:"registry"`
	DryRun      bool      `json:"dry_run"`
	Removed     []GCEntry `json:"removed"`
	Busy        []GCEntry `json:"busy"`
	PlanRecords int       `json:"plan_records_removed"`
	// FreedBytes is what the entries and plan records took on disk;
	// TrashFreedBytes what earlier runs had left in the trash. Each byte is
	// counted once: TotalFreedBytes is their sum, what du sees go.
	FreedBytes      int64 `json:"freed_bytes"`
	TrashFreedBytes int64 `json:"trash_freed_bytes"`
	TotalFreedBytes int64 `json:"total_freed_bytes"`
}

// GC is the lock-aware replacement for a TTL reaper and cargo's auto-GC:
// each crate is removed only under its exclusive lock, taken without
// waiting, so a crate any running build holds is kept, whatever the age.
func GC(reg store.Registry, o GCOptions, now time.Time) (*GCReport, error) {
	rep := &GCReport{Registry: reg.Root, DryRun: o.DryRun, Removed: []GCEntry{}, Busy: []GCEntry{}}
	var errs *multierror.Error
	// What earlier runs left in the trash; what this run moves there is
	// counted in its entry, not again when the trash is emptied.
	rep.TrashFreedBytes = reg.TrashUsage()
	eligible := func(lastUse time.Time) (bool, bool) {
		age := now.Sub(lastUse)
		return age > o.MaxAge, o.Tarballs && age > o.CrateMaxAge
	}
	for _, i := range reg.AllInstances() {
		last := reg.LastUse(i)
		ext, tb := eligible(last)
		_, extErr := os.Lstat(reg.Extraction(i))
		_, tbErr := os.Lstat(reg.Tarball(i))
		ext = ext && extErr == nil
		tb = tb && tbErr == nil
		if !ext && !tb {
			continue
		}
		e := GCEntry{Crate: i.Name, Version: i.Version, Regdir: i.Regdir, Path: reg.Extraction(i), LastUsed: last}
		switch {
		case ext && tb:
			e.What = "extraction+tarball"
		case tb:
			e.What, e.Path = "tarball", reg.Tarball(i)
		default:
			e.What = "extraction"
		}
		if o.DryRun {
			e.Bytes = reg.Usage(i, ext, tb)
			if reg.InUse(i) {
				rep.Busy = append(rep.Busy, e)
				continue
			}
			rep.Removed = append(rep.Removed, e)
			rep.FreedBytes += e.Bytes
			continue
		}
		rm, err := reg.Remove(i, o.Tarballs, eligible)
		switch {
		case errors.Is(err, store.ErrInUse):
			rep.Busy = append(rep.Busy, e)
		case err != nil:
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", i, err))
		case rm.Extraction || rm.Tarball:
			e.Bytes = rm.Bytes
			rep.Removed = append(rep.Removed, e)
			rep.FreedBytes += rm.Bytes
		}
	}
	temps := reg.StaleTemps(time.Hour)
	paths := make([]string, 0, len(temps))
	for p := range temps {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		i := temps[p]
		e := GCEntry{Crate: i.Name, Version: i.Version, Regdir: i.Regdir, What: "temp", Path: p}
		if o.DryRun {
			e.Bytes = store.DiskUsage(p)
			rep.Removed = append(rep.Removed, e)
			rep.FreedBytes += e.Bytes
			continue
		}
		n, err := reg.RemoveTemp(p, i)
		switch {
		case errors.Is(err, store.ErrInUse):
			rep.Busy = append(rep.Busy, e)
		case err != nil:
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", p, err))
		default:
			e.Bytes = n
			rep.Removed = append(rep.Removed, e)
			rep.FreedBytes += n
		}
	}
	plans, planBytes := reg.RemoveStalePlans(max(o.MaxAge, time.Hour), o.DryRun)
	rep.PlanRecords = plans
	rep.FreedBytes += planBytes
	if !o.DryRun {
		n, err := reg.EmptyTrash(0)
		rep.TrashFreedBytes = min(n, rep.TrashFreedBytes)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("cannot empty %s: %w", reg.TrashDir(), err))
		}
	}
	rep.TotalFreedBytes = rep.FreedBytes + rep.TrashFreedBytes
	return rep, errs.ErrorOrNil()
}
