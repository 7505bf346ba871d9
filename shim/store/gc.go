package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/events"
)

// LastUse is when a crate was last used: its lock file's mtime (every run
// that pins it touches it, at most once an hour), else the newest of its
// marker's and tarball's mtimes (when it was extracted or downloaded).
func (r Registry) LastUse(i Instance) time.Time {
	if fi, err := r.lstat(r.LockPath(i)); err == nil {
		return fi.ModTime()
	}
	var t time.Time
	for _, p := range []string{filepath.Join(r.Extraction(i), markerName), r.Extraction(i), r.Tarball(i)} {
		if fi, err := r.lstat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// GCPolicy says what gc removes: the extractions of crates unused for
// longer than MaxAge and, with Tarballs, the tarballs of those unused for
// longer than CrateMaxAge. A dry run takes every step but the removal.
type GCPolicy struct {
	MaxAge      time.Duration
	CrateMaxAge time.Duration
	Tarballs    bool
	DryRun      bool
	Now         time.Time
}

// Removal is what Collect removed (or, dry, would remove) of one crate.
type Removal struct {
	Extraction bool
	Tarball    bool
	Bytes      int64
	LastUse    time.Time
}

// due is what of i the policy removes, of what exists now.
func (r Registry) due(i Instance, p GCPolicy) Removal {
	rm := Removal{LastUse: r.LastUse(i)}
	age := p.Now.Sub(rm.LastUse)
	_, extErr := r.lstat(r.Extraction(i))
	_, tbErr := r.lstat(r.Tarball(i))
	rm.Extraction = extErr == nil && age > p.MaxAge
	rm.Tarball = tbErr == nil && p.Tarballs && age > p.CrateMaxAge
	return rm
}

// Collect is gc of one crate, decided here only: what the policy makes due
// is removed under i's exclusive lock, taken without waiting (ErrInUse, with
// what was due, when a build holds it), and only if still due once the lock
// is held: a run may have used the crate since the first look.
func (r Registry) Collect(i Instance, p GCPolicy) (Removal, error) {
	rm := r.due(i, p)
	if !rm.Extraction && !rm.Tarball {
		return rm, nil
	}
	lk, err := r.gcLock(i, p.DryRun)
	if err != nil {
		return rm, err
	}
	defer lk.Release()
	rm = r.due(i, p)
	if p.DryRun {
		// What the real run of this uid could not remove, the dry run
		// does not promise.
		if err := r.removable(i, rm); err != nil {
			return Removal{LastUse: rm.LastUse}, err
		}
		rm.Bytes = r.sizeOf(i, rm)
		return rm, nil
	}
	t0 := time.Now()
	done, err := r.remove(i, rm)
	if done.Extraction || done.Tarball {
		e := event(events.KindRemove, gcAction(done), i, t0)
		e.Bytes = done.Bytes
		e.Reason = "unused since " + done.LastUse.UTC().Format(time.RFC3339)
		r.emit(e)
	}
	return done, err
}

// gcAction is the Action word of a gc removal event.
func gcAction(rm Removal) string {
	switch {
	case rm.Extraction && rm.Tarball:
		return "gc-extraction+tarball"
	case rm.Tarball:
		return "gc-tarball"
	}
	return "gc-extraction"
}

// gcLock takes i's exclusive lock without waiting. A dry run creates no lock
// file: where there is none, no build through a shim holds the crate.
func (r Registry) gcLock(i Instance, dry bool) (*lockfile.Lock, error) {
	_, statErr := r.lstat(r.LockPath(i))
	if dry && statErr != nil {
		return nil, nil
	}
	before := r.LastUse(i)
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	if lockfile.IsBusy(err) {
		return nil, ErrInUse
	}
	if err == nil && statErr != nil {
		// We just created the lock file: its mtime says "now", but the crate
		// was last used when the first look said.
		_ = lk.Chtimes(before) // through the held descriptor, never the path
	}
	return lk, err
}

// sizeOf is what remove frees for rm, as du counts it: the extraction with
// its state record, the tarball. A dry run reports the same numbers.
func (r Registry) sizeOf(i Instance, rm Removal) int64 {
	var n int64
	if rm.Extraction {
		n += r.DiskUsage(r.Extraction(i)) + r.Blocks(r.StatePath(i))
	}
	if rm.Tarball {
		n += r.Blocks(r.Tarball(i))
	}
	return n
}

// remove deletes what rm says, under i's exclusive lock.
func (r Registry) remove(i Instance, rm Removal) (Removal, error) {
	done := Removal{LastUse: rm.LastUse}
	if rm.Extraction {
		root := r.Extraction(i)
		n := r.DiskUsage(root) + r.Blocks(r.StatePath(i))
		if err := r.trash(root, i, false); err != nil {
			return done, err
		}
		r.unlink(r.StatePath(i))
		done.Extraction, done.Bytes = true, done.Bytes+n
	}
	if rm.Tarball {
		p := r.Tarball(i)
		if _, err := r.lstat(p); err == nil {
			n := r.Blocks(p)
			if err := r.unlink(p); err != nil {
				return done, err
			}
			done.Tarball, done.Bytes = true, done.Bytes+n
		}
	}
	_, errExt := r.lstat(r.Extraction(i))
	_, errTb := r.lstat(r.Tarball(i))
	if errors.Is(errExt, fs.ErrNotExist) && errors.Is(errTb, fs.ErrNotExist) {
		// Nothing left to guard. Removing a lock file we hold is safe: a
		// process that opened the old file finds, after locking, that the
		// path no longer names it, and locks the new one.
		r.unlink(r.LockPath(i))
		r.unlink(r.StatePath(i))
	}
	return done, nil
}

// StaleTemps lists temp dirs of killed repairs older than minAge, with the
// instance each belongs to.
func (r Registry) StaleTemps(minAge time.Duration) map[string]Instance {
	out := map[string]Instance{}
	for _, d := range r.Regdirs() {
		parent := filepath.Join(r.Root, "src", d)
		ents, err := r.readDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			l, ok := parseLeftover(e.Name())
			if !ok || l.kind == trashed {
				continue
			}
			name, version, ok := splitNameVersion(l.stem)
			if !ok {
				continue
			}
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) >= minAge {
				out[filepath.Join(parent, e.Name())] = Instance{Crate: Crate{Name: name, Version: version}, Regdir: d}
			}
		}
	}
	return out
}

// CollectTemp deletes one stale temp dir (StaleTemps) under its crate's
// exclusive lock, taken without waiting; dry, it only says how much.
func (r Registry) CollectTemp(p string, i Instance, dry bool) (int64, error) {
	lk, err := r.gcLock(i, dry)
	if err != nil {
		return 0, err
	}
	defer lk.Release()
	n := r.DiskUsage(p)
	if dry {
		return n, nil
	}
	return n, r.removeAll(p)
}

// Orphans counts what SweepOrphans removed (or, dry, would remove).
type Orphans struct {
	LockFiles    int
	StateRecords int
}

// SweepOrphans removes the lock files and state records of crates no longer
// in the registry: a lock file whose crate has neither an extraction nor a
// tarball (a cold crate planned but never downloaded, a crate wiped or
// collected), a state record whose extraction is gone. Each crate is taken
// exclusively without waiting, so a lock a build holds (a cold crate being
// downloaded) is kept, and its files are unlinked while the lock is held: a
// process that opened the old lock file finds, after locking, that the path
// no longer names it, and locks the new one.
func (r Registry) SweepOrphans(dry bool) (Orphans, error) {
	var out Orphans
	var firstErr error
	for _, i := range r.recordedInstances() {
		_, extErr := r.lstat(r.Extraction(i))
		_, tbErr := r.lstat(r.Tarball(i))
		if extErr == nil {
			continue
		}
		_, lockErr := r.lstat(r.LockPath(i))
		_, stateErr := r.lstat(r.StatePath(i))
		orphanLock := lockErr == nil && tbErr != nil
		if !orphanLock && stateErr != nil {
			continue
		}
		if dry {
			out.LockFiles += btoi(orphanLock)
			out.StateRecords += btoi(stateErr == nil)
			continue
		}
		n, err := r.removeOrphan(i)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out.LockFiles += n.LockFiles
		out.StateRecords += n.StateRecords
	}
	out.LockFiles += r.sweepUnlockable(dry)
	return out, firstErr
}

// sweepUnlockable removes what stands where a lock file belongs but is not
// a regular file (a FIFO or a symlink another uid planted). No runner can
// lock it (the lock contract refuses it), so every build planning that
// crate would run unprotected, and no build can be holding it; unlinkat
// never follows it. A planted directory is left for a person to look at.
func (r Registry) sweepUnlockable(dry bool) (n int) {
	top := filepath.Join(r.ShimDir(), "locks")
	regdirs, _ := r.readDir(top)
	for _, d := range regdirs {
		if !d.IsDir() {
			// The registry-wide ones: cold.lock, fetch.lock, repair.lock.
			if !d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".lock") && (dry || r.unlink(filepath.Join(top, d.Name())) == nil) {
				n++
			}
			continue
		}
		if r.registryLock(d.Name()) {
			// A directory another uid made there: no regdir has the name.
			if dry || r.removeAll(filepath.Join(top, d.Name())) == nil {
				n++
			}
			continue
		}
		ents, _ := r.readDir(filepath.Join(top, d.Name()))
		for _, e := range ents {
			if e.Type().IsRegular() || e.IsDir() || !strings.HasSuffix(e.Name(), ".lock") {
				continue
			}
			if dry || r.unlink(filepath.Join(top, d.Name(), e.Name())) == nil {
				n++
			}
		}
	}
	// The files every home's cargo lock links to: a FIFO there is refused
	// by every run (and root replaces it only in a registry root it owns).
	for _, names := range cargoLockNames {
		p := filepath.Join(r.Root, names[1])
		if fi, err := r.lstat(p); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
			if dry || r.unlink(p) == nil {
				n++
			}
		}
	}
	return n
}

// registryLock: name is that of a registry-wide lock file in locks/.
func (r Registry) registryLock(name string) bool {
	for _, p := range []string{r.ColdLock(), r.FetchLock(), r.RepairLock()} {
		if name == filepath.Base(p) {
			return true
		}
	}
	return false
}

// removeOrphan decides again under i's exclusive lock.
func (r Registry) removeOrphan(i Instance) (Orphans, error) {
	var n Orphans
	_, lockErr := r.lstat(r.LockPath(i))
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	if lockfile.IsBusy(err) {
		return n, nil
	}
	if err != nil {
		return n, err
	}
	defer lk.Release()
	if _, err := r.lstat(r.Extraction(i)); err == nil {
		return n, nil
	}
	if r.unlink(r.StatePath(i)) == nil {
		n.StateRecords++
	}
	if _, err := r.lstat(r.Tarball(i)); errors.Is(err, fs.ErrNotExist) {
		if r.unlink(r.LockPath(i)) == nil && lockErr == nil {
			n.LockFiles++
		}
	}
	return n, nil
}

// recordedInstances lists every instance with a lock file or a state record.
func (r Registry) recordedInstances() []Instance {
	seen := map[Instance]bool{}
	var out []Instance
	scan := func(top, suffix string) {
		regdirs, _ := r.readDir(filepath.Join(r.ShimDir(), top))
		for _, d := range regdirs {
			if !d.IsDir() || d.Name() == "plans" {
				continue
			}
			ents, _ := r.readDir(filepath.Join(r.ShimDir(), top, d.Name()))
			for _, e := range ents {
				stem, ok := strings.CutSuffix(e.Name(), suffix)
				if !ok || !e.Type().IsRegular() || strings.HasPrefix(stem, ".") {
					continue
				}
				if i, ok := ParseInstance(d.Name(), stem); ok && !seen[i] {
					seen[i] = true
					out = append(out, i)
				}
			}
		}
	}
	scan("locks", ".lock")
	scan("state", "")
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// removable says whether this uid may remove what rm names, as remove
// would: every way remove has (into the trash, aside, or in place) needs
// to unlink the entry from its parent, which takes write and search
// permission there and, in a sticky directory, owning it or the entry.
func (r Registry) removable(i Instance, rm Removal) error {
	var paths []string
	if rm.Extraction {
		paths = append(paths, r.Extraction(i))
	}
	if rm.Tarball {
		paths = append(paths, r.Tarball(i))
	}
	for _, p := range paths {
		var parent, entry unix.Stat_t
		if err := r.lstatRaw(filepath.Dir(p), &parent); err != nil {
			return err
		}
		if err := r.lstatRaw(p, &entry); err != nil {
			return err
		}
		if !mayUnlink(&parent, &entry) {
			return &fs.PathError{Op: "remove", Path: p, Err: fs.ErrPermission}
		}
	}
	return nil
}

// mayUnlink is the kernel's rule for removing entry from parent, for this
// process's effective uid and groups.
func mayUnlink(parent, entry *unix.Stat_t) bool {
	euid := uint32(os.Geteuid())
	if euid == 0 {
		return true
	}
	perm := parent.Mode & 0o007
	switch {
	case parent.Uid == euid:
		perm = parent.Mode >> 6 & 0o007
	case inGroup(parent.Gid):
		perm = parent.Mode >> 3 & 0o007
	}
	if perm&0o3 != 0o3 {
		return false
	}
	return parent.Mode&unix.S_ISVTX == 0 || parent.Uid == euid || entry.Uid == euid
}

func inGroup(gid uint32) bool {
	if uint32(os.Getegid()) == gid {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if uint32(g) == gid {
			return true
		}
	}
	return false
}
