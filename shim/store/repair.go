package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/events"
)

// Action is what a repair did, for messages: Verb is cargo-style.
type Action struct {
	Verb   string // "Repairing", "Extracting", "Removing"
	Kind   string // ActReextracted, ActExtracted, ActRemovedTarball, ActMovedAside
	Detail string
	// Left is set when the crate is left broken (no trusted tarball to repair
	// from and nothing provably broken to remove).
	Left bool
	// Unjournaled is why the repair could not be journaled: target dirs
	// that compiled the damage are then not rebuilt by the next runs.
	Unjournaled error
}

// The Kind words of an Action: a stable interface (JSON, stats).
const (
	ActReextracted    = "reextracted"     // a broken extraction unpacked again from its tarball
	ActExtracted      = "extracted"       // a cached tarball with no extraction unpacked
	ActRemovedTarball = "removed-tarball" // a truncated tarball removed; cargo downloads it again
	ActMovedAside     = "moved-aside"     // a broken extraction with no trusted tarball moved to the trash
)

// Repair brings instance i back to a state cargo handles: complete, or
// cleanly absent so that cargo downloads it. It must run under i's exclusive
// lock, on a Finding taken under that lock. It never removes a readable
// tarball and never removes an extraction not proven broken.
func (r Registry) Repair(f Finding) (Action, error) { return r.repair(f, false) }

// swappable: the repair f needs is an extraction swapped in whole, which
// builds pinning the crate may see happen (RepairCrate).
func (f Finding) swappable() bool {
	return !f.ExtractionOK && f.TarballCorrupt == nil && f.mayExtract()
}

// repair is Repair; pinned, under a shared lock (RepairCrate), it only
// swaps (swappable) and keeps every directory pinned builds may still read:
// earlier temp dirs and trash entries of i stay for gc.
func (r Registry) repair(f Finding, pinned bool) (Action, error) {
	i := f.Instance
	root := r.Extraction(i)
	tb := r.Tarball(i)
	if pinned && !f.swappable() {
		return Action{}, errNeedsExclusive
	}
	if !pinned {
		r.removeTemps(i)
	}

	var removedTarball bool
	if f.TarballCorrupt != nil {
		// Provably unreadable to its end: cargo would fail on it forever and
		// never download it again while it is non-empty.
		if err := r.unlink(tb); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Action{}, fmt.Errorf("removing corrupt tarball %s of %s: %w", tb, i.Crate, err)
		}
		removedTarball = true
		if f.ExtractionOK {
			return Action{Verb: "Removing", Kind: ActRemovedTarball, Detail: fmt.Sprintf("truncated tarball of %s (%s); cargo will download it again", i.Crate, tb)}, nil
		}
	}

	if f.ExtractionOK {
		return Action{}, nil
	}
	if f.mayExtract() && !removedTarball {
		m, err := r.reextract(i, pinned)
		if err != nil {
			return Action{}, err
		}
		_ = r.recordState(i, m)
		if f.Fault == NotExtracted {
			return Action{Verb: "Extracting", Kind: ActExtracted, Detail: fmt.Sprintf("%s (cached, not extracted)", i.Crate)}, nil
		}
		return Action{Verb: "Repairing", Kind: ActReextracted, Detail: fmt.Sprintf("%s (%s)", i.Crate, f.Reason)}, nil
	}
	// No tarball we trust: move the broken extraction aside so that cargo
	// downloads (or, with a foreign tarball, unpacks) it afresh instead of
	// trusting a marker over missing files.
	if _, err := r.lstat(root); err == nil {
		if err := r.trash(root, i, false); err != nil {
			return Action{}, err
		}
		r.unlink(r.StatePath(i))
		why := f.Reason
		if removedTarball {
			why += ", tarball truncated"
		}
		return Action{Verb: "Removing", Kind: ActMovedAside, Detail: fmt.Sprintf("broken extraction of %s (%s); cargo will download it again", i.Crate, why)}, nil
	}
	if removedTarball {
		return Action{Verb: "Removing", Kind: ActRemovedTarball, Detail: fmt.Sprintf("truncated tarball of %s (%s); cargo will download it again", i.Crate, tb)}, nil
	}
	return Action{Left: true, Detail: fmt.Sprintf("%s (%s): no trusted tarball to repair from", i.Crate, f.Reason)}, nil
}

// reextract unpacks the tarball into a temp dir beside the extraction and
// swaps it in, so that the extraction path always names either the old
// directory or a complete new one with its marker.
func (r Registry) reextract(i Instance, pinned bool) (*Manifest, error) {
	root := r.Extraction(i)
	parent := filepath.Dir(root)
	// As cargo makes it (0o777 less the umask): src/ and the regdir are
	// cargo's directories, not the shim's shared ones.
	if err := r.mkdirUmask(parent); err != nil {
		return nil, err
	}
	tmp := filepath.Join(parent, leftover{kind: repairTemp, stem: i.Dir(), pid: os.Getpid()}.String())
	r.removeAll(tmp)
	m, err := extract(r.Tarball(i), i.Crate, tmp)
	if err == nil && (!validChecksum(i.Checksum) || m.SHA256 != i.Checksum) {
		// The tarball was checked before; another uid may have swapped it
		// since. What was unpacked is what is hashed: never swap in bytes
		// the trusted checksum does not name.
		err = fmt.Errorf("its sha256 is now %s, not the trusted %s", m.SHA256, i.Checksum)
	}
	if err != nil {
		r.removeAll(tmp)
		return nil, fmt.Errorf("extracting %s into %s: %w", r.Tarball(i), tmp, err)
	}
	if _, err := r.lstat(root); err != nil {
		if err := r.rename(tmp, root); err != nil {
			r.removeAll(tmp)
			return nil, err
		}
		return m, nil
	}
	// Atomic exchange: no moment where the path is missing. Rename needs only
	// the parent directory, so files another uid owns do not stop it.
	if err = r.exchange(tmp, root); err != nil && pinned {
		// Aside-then-in leaves a moment with no directory at the path,
		// which a pinned build may read: patch it file by file instead.
		perr := r.patchInPlace(tmp, root, m)
		r.removeAll(tmp)
		if perr != nil {
			return nil, fmt.Errorf("%w (no RENAME_EXCHANGE here, and patching in place failed: %v)", errNeedsExclusive, perr)
		}
		return m, nil
	}
	if err != nil {
		// Filesystems without RENAME_EXCHANGE: aside, then in.
		old := filepath.Join(parent, leftover{kind: repairTemp, stem: i.Dir(), pid: os.Getpid(), old: true}.String())
		if err := r.rename(root, old); err != nil {
			r.removeAll(tmp)
			return nil, err
		}
		if err := r.rename(tmp, root); err != nil {
			r.rename(old, root)
			r.removeAll(tmp)
			return nil, err
		}
		tmp = old
	}
	if err := r.trash(tmp, i, pinned); err != nil {
		return m, err
	}
	return m, nil
}

// trash renames a broken directory into registry/.cargo-shim/trash, to be
// deleted later (gc, or the next repair), outside any path cargo reads.
// Moving a directory to another parent needs write access to the directory
// itself (its ".." changes): a root-owned leftover cannot be moved there by a
// runner's uid. It is then renamed aside in its own parent (needs only the
// parent) under a name cargo never reads, for gc to delete. Pinned (a
// repair beside builds that pin i), earlier trash entries of i are kept and
// nothing is deleted in place: a pinned build may still read them.
func (r Registry) trash(p string, i Instance, pinned bool) error {
	dir := r.TrashDir()
	now, pid := time.Now(), os.Getpid()
	if err := r.mkdirAll(dir, safefs.Shared); err == nil {
		name := leftover{kind: trashed, stem: i.Regdir + "." + i.Dir(), at: now, pid: pid}.String()
		if err := r.rename(p, filepath.Join(dir, name)); err == nil {
			if !pinned {
				r.dropOlderTrash(i, name)
			}
			return nil
		}
	}
	aside := leftover{kind: setAside, stem: i.Dir(), at: now, pid: pid}.String()
	if err := r.rename(p, filepath.Join(filepath.Dir(p), aside)); err == nil || pinned {
		// Pinned and neither moved: it stays under its temp name, which
		// gc deletes under i's exclusive lock.
		return nil
	}
	// It is proven broken and we hold its exclusive lock: delete in place.
	if err := r.removeAll(p); err != nil {
		return fmt.Errorf("cannot move %s of %s to the trash, aside or remove it: %w", p, i.Crate, err)
	}
	return nil
}

// dropOlderTrash deletes i's earlier trash entries. The caller holds i's
// exclusive lock, and nothing reads the trash: a crate repaired again and
// again before the trash is emptied keeps one copy there, not one per repair.
func (r Registry) dropOlderTrash(i Instance, keep string) {
	ents, err := r.readDir(r.TrashDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		l, ok := parseLeftover(e.Name())
		if ok && l.kind == trashed && l.stem == i.Regdir+"."+i.Dir() && e.Name() != keep {
			r.removeAll(filepath.Join(r.TrashDir(), e.Name()))
		}
	}
}

// removeTemps deletes temp dirs a killed repair of i left. Safe: only a
// repair creates them, and a repair of i holds i's exclusive lock, as we do.
func (r Registry) removeTemps(i Instance) {
	parent := filepath.Join(r.Root, "src", i.Regdir)
	ents, err := r.readDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if l, ok := parseLeftover(e.Name()); ok && l.kind == repairTemp && l.stem == i.Dir() {
			r.removeAll(filepath.Join(parent, e.Name()))
		}
	}
}

// EmptyTrash deletes trash entries older than minAge and returns the bytes
// freed. Entries it cannot delete (another uid's read-only dirs) stay, as do
// those of a crate a build pins (TrashKept).
func (r Registry) EmptyTrash(minAge time.Duration) (freed int64, err error) {
	ents, err := r.trashEntries(minAge)
	for _, e := range ents {
		p := filepath.Join(r.TrashDir(), e.name)
		lk, kept := r.trashUnpinned(e)
		if kept {
			continue
		}
		// Unpinned at this instant: every build that pinned the crate
		// before the swap has ended, and later ones read the extraction,
		// never the trash. Builds may pin it again while this is deleted.
		lk.Release()
		n := r.DiskUsage(p)
		t0 := time.Now()
		if rerr := r.removeAll(p); rerr == nil {
			freed += n
			r.emitTrashed(e.leftover, n, t0)
		} else if err == nil {
			err = rerr
		}
	}
	return freed, err
}

// trashEntry is one entry of the trash: its name and what it says.
type trashEntry struct {
	name string
	leftover
}

// trashEntries lists the trash's entries older than minAge. Below the
// registry's descriptor, no link followed: a trash replaced by a symlink
// fails here instead of being emptied. No trash: nothing, no error.
func (r Registry) trashEntries(minAge time.Duration) ([]trashEntry, error) {
	ents, err := r.readDir(r.TrashDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []trashEntry
	for _, e := range ents {
		l, ok := parseLeftover(e.Name())
		// The name says when (a rename keeps the directory's old mtime).
		if ok && l.kind == trashed && time.Since(l.at) >= minAge {
			out = append(out, trashEntry{name: e.Name(), leftover: l})
		}
	}
	return out, nil
}

// trashUnpinned takes the exclusive lock of the crate a trash entry came
// from, without waiting. kept: a build pins that crate, and may be one that
// pinned it before a repair swapped this directory out (a build script's
// working directory, say): the entry stays until the pins are gone.
func (r Registry) trashUnpinned(e trashEntry) (lk *lockfile.Lock, kept bool) {
	i, ok := e.instance()
	if !ok {
		return nil, false
	}
	if _, err := r.lstat(r.LockPath(i)); err != nil {
		// No lock file, so no build pins i: one that pinned it before
		// the swap holds that file, and it is removed only under i's
		// exclusive lock. Not created here: gc would find it orphaned.
		return nil, false
	}
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	return lk, lockfile.IsBusy(err)
}

// TrashKept is the disk space of the trash entries EmptyTrash would keep
// now because their crates are pinned (a dry run's prediction).
func (r Registry) TrashKept() (n int64) {
	ents, _ := r.trashEntries(0)
	for _, e := range ents {
		if lk, kept := r.trashUnpinned(e); kept {
			n += r.DiskUsage(filepath.Join(r.TrashDir(), e.name))
		} else {
			lk.Release()
		}
	}
	return n
}

// DiskUsage is what deleting p, a path below the registry, frees on disk:
// the blocks of everything under it, directories included, as du counts
// them (no links followed), so that what gc says it freed is what du sees
// go.
func (r Registry) DiskUsage(p string) int64 {
	d, err := r.subdir(p)
	if err != nil {
		return r.Blocks(p)
	}
	defer d.Close()
	return r.Blocks(p) + diskUsage(d, ".", 0)
}

func diskUsage(d *safefs.Dir, rel string, depth int) int64 {
	ents, err := d.ReadDir(rel)
	if err != nil || depth > 256 {
		return 0
	}
	var n int64
	for _, e := range ents {
		p := path.Join(rel, e.Name())
		var st unix.Stat_t
		if d.LstatRaw(p, &st) == nil {
			n += st.Blocks * 512
		}
		if e.IsDir() {
			n += diskUsage(d, p, depth+1)
		}
	}
	return n
}

// Blocks is the disk space of one file or directory below the registry, as
// du counts it.
func (r Registry) Blocks(p string) int64 {
	var st unix.Stat_t
	if r.lstatRaw(p, &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// TrashUsage is the disk space of what is in the trash now.
func (r Registry) TrashUsage() int64 {
	ents, err := r.readDir(r.TrashDir())
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if l, ok := parseLeftover(e.Name()); ok && l.kind == trashed {
			n += r.DiskUsage(filepath.Join(r.TrashDir(), e.Name()))
		}
	}
	return n
}

// RepairOptions tune RepairCrate.
type RepairOptions struct {
	// NoWait skips a crate whose lock is held (a build uses it) instead of
	// waiting: nested shims and gc-style callers.
	NoWait  bool
	Offline bool
	// Waiting is called once when a lock is not free after about a second.
	Waiting func(WaitFor)
	// Deep also compares file contents with the tarball (verify --deep).
	Deep bool
}

// WaitFor names the lock a repair waits for.
type WaitFor int

const (
	// WaitCrate: a build holds the crate's lock.
	WaitCrate WaitFor = iota
	// WaitPackageCache: a cargo is downloading or unpacking.
	WaitPackageCache
)

func (w WaitFor) String() string {
	if w == WaitCrate {
		return "crate"
	}
	return "package cache"
}

// ErrInUse is returned by RepairCrate with NoWait when a build holds the crate.
var ErrInUse = errors.New("in use by a running build")

// RepairCrate is the one way to change a crate: lock it, wait for
// downloads to settle, check again in full, repair. The Finding is the check
// made under the lock.
//
// Two ways to hold a crate for a repair (docs/fleet.md, "Long jobs and
// repairs"). Its exclusive lock, when no build pins it: every repair is
// allowed. When builds pin it (a long `cargo run` or `cargo test` holds
// its shared lock until cargo exits), a shared lock plus the registry's
// repair lock: then only a repair that swaps a complete extraction in is
// made, since the pinned builds read the path and get the new, complete
// directory, and the old one waits in the trash until their pins end.
// Anything that removes (a corrupt tarball, an extraction with no trusted
// tarball) still waits for the exclusive lock.
func (r Registry) RepairCrate(ctx context.Context, i Instance, o RepairOptions) (act Action, f Finding, err error) {
	lk, err := r.exclusiveSoon(ctx, i, o)
	if lockfile.IsBusy(err) {
		var done bool
		if act, f, done, err = r.repairBesidePins(ctx, i, o); done || err != nil {
			return act, f, err
		}
		lk, err = r.takeLock(ctx, r.LockPath(i), lockfile.Exclusive, o)
	}
	if err != nil {
		return Action{}, Finding{Instance: i}, err
	}
	defer lk.Release()
	return r.repairLocked(ctx, i, o, false)
}

// settle is how long a repair waits for the exclusive lock before it
// repairs beside the builds that pin the crate: a build that has just
// ended keeps its pins until its holder sees cargo exit, and a repair
// under the exclusive lock leaves the crate one trash entry, not one more.
// Below the lock layer's patience, so no "Blocking" line is printed.
const settle = 500 * time.Millisecond

// exclusiveSoon takes i's exclusive lock, waiting up to settle for pins
// that are about to end (not at all for NoWait callers); ErrBusy after.
func (r Registry) exclusiveSoon(ctx context.Context, i Instance, o RepairOptions) (*lockfile.Lock, error) {
	lk, err := lockfile.Try(r.LockPath(i), lockfile.Exclusive)
	if !lockfile.IsBusy(err) || o.NoWait {
		return lk, err
	}
	soon, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	lk, err = lockfile.Acquire(soon, r.LockPath(i), lockfile.Exclusive, lockfile.Options{})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, lockfile.ErrBusy
	}
	return lk, err
}

// repairBesidePins repairs i while builds pin it, when a swap does it
// (done); otherwise it leaves i to the exclusive path. Lock order: the
// crate's lock, then the repair lock, as everywhere; a holder of the
// repair lock waits for nothing but cargo's downloads, so a wait for it is
// short.
func (r Registry) repairBesidePins(ctx context.Context, i Instance, o RepairOptions) (act Action, f Finding, done bool, err error) {
	// Waits only while a removal or an older release's repair holds i
	// exclusively: pins are shared.
	pin, err := r.takeLock(ctx, r.LockPath(i), lockfile.Shared, o)
	if err != nil {
		return Action{}, Finding{Instance: i}, true, err
	}
	defer pin.Release()
	rl, err := r.takeLock(ctx, r.RepairLock(), lockfile.Exclusive, o)
	if err != nil && !errors.Is(err, ErrInUse) && ctx.Err() == nil {
		// Nothing lockable there (another uid planted a directory, a
		// FIFO, a link): wait for the exclusive lock, as before it existed.
		return Action{}, Finding{Instance: i}, false, nil
	}
	if err != nil {
		return Action{}, Finding{Instance: i}, true, err
	}
	defer rl.Release()
	act, f, err = r.repairLocked(ctx, i, o, true)
	if errors.Is(err, errNeedsExclusive) {
		return Action{}, f, false, nil
	}
	return act, f, true, err
}

// takeLock takes path in mode: without waiting for NoWait callers
// (ErrInUse when it is held), else until ctx is done.
func (r Registry) takeLock(ctx context.Context, path string, mode lockfile.Mode, o RepairOptions) (*lockfile.Lock, error) {
	if o.NoWait {
		lk, err := lockfile.Try(path, mode)
		if lockfile.IsBusy(err) {
			return nil, ErrInUse
		}
		return lk, err
	}
	return lockfile.Acquire(ctx, path, mode, lockfile.Options{Waiting: func(string) {
		if o.Waiting != nil {
			o.Waiting(WaitCrate)
		}
	}})
}

// errNeedsExclusive: the repair a crate needs removes something, which
// builds pinning it may still read.
var errNeedsExclusive = errors.New("this repair needs the crate's exclusive lock")

// repairLocked is the check and repair under i's lock: exclusive, or shared
// plus the repair lock (pinned).
func (r Registry) repairLocked(ctx context.Context, i Instance, o RepairOptions, pinned bool) (act Action, f Finding, err error) {
	var t0 time.Time
	var reason string
	var repairErr error
	defer func() {
		if err == nil && (act.Kind != "" || act.Left) {
			r.emitRepair(i, act, reason, t0)
		}
	}()
	level := Files
	if o.Deep {
		level = Deep
	}
	err = r.Quiesce(ctx, func() {
		if o.Waiting != nil {
			o.Waiting(WaitPackageCache)
		}
	}, func() {
		f = r.fullCheck(i, level, o.Offline)
		switch {
		case f.Verdict == Broken && pinned && !f.swappable():
			repairErr = errNeedsExclusive
		case f.Verdict == Broken:
			reason, t0 = f.Reason, time.Now()
			act, repairErr = r.repair(f, pinned)
			if repairErr == nil {
				if journaled(act.Kind) {
					// Before the lock is released: a run that pins i
					// next finds the record (package shim/targetdir).
					act.Unjournaled = r.noteRepaired(i, time.Now())
				}
				f = r.fullCheck(i, level, o.Offline)
			}
		case f.recordable():
			_ = r.recordStateOf(i, f.manifest, f.exposure)
		}
	})
	if err == nil {
		err = repairErr
	}
	return act, f, err
}

// emitRepair is the event of one repair or extraction: what was found
// broken (reason) and what was done.
func (r Registry) emitRepair(i Instance, act Action, reason string, t0 time.Time) {
	kind, action := events.KindRepair, act.Kind
	switch {
	case act.Left:
		action = "left"
	case act.Kind == ActExtracted:
		kind, reason = events.KindExtract, "cached, not extracted"
	}
	e := event(kind, action, i, t0)
	e.Reason = reason
	r.emit(e)
}

// emitTrashed is the event of one trash entry deleted.
func (r Registry) emitTrashed(l leftover, bytes int64, t0 time.Time) {
	e := events.Event{Kind: events.KindRemove, Action: "trash", Bytes: bytes, Seconds: time.Since(t0).Seconds(),
		Reason: "trash entry from " + l.at.UTC().Format(time.RFC3339)}
	if i, ok := l.instance(); ok {
		e.Regdir, e.Crate, e.Version = i.Regdir, i.Name, i.Version
	}
	r.emit(e)
}

// instance is the crate a trash entry came from. The stem is
// "<regdir>.<name>-<version>"; both halves have dots.
func (l leftover) instance() (Instance, bool) {
	for k := strings.IndexByte(l.stem, '.'); k > 0; k = nextDot(l.stem, k) {
		name, version, ok := splitNameVersion(l.stem[k+1:])
		if ok && ValidRegdir(l.stem[:k]) && validCrate(Crate{Name: name, Version: version}) {
			return Instance{Crate: Crate{Name: name, Version: version}, Regdir: l.stem[:k]}, true
		}
	}
	return Instance{}, false
}

func nextDot(s string, k int) int {
	if n := strings.IndexByte(s[k+1:], '.'); n >= 0 {
		return k + 1 + n
	}
	return -1
}
