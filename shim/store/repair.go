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
func (r Registry) Repair(f Finding) (Action, error) {
	i := f.Instance
	root := r.Extraction(i)
	tb := r.Tarball(i)
	r.removeTemps(i)

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
		m, err := r.reextract(i)
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
		if err := r.trash(root, i); err != nil {
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
func (r Registry) reextract(i Instance) (*Manifest, error) {
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
	if err = r.exchange(tmp, root); err != nil {
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
	if err := r.trash(tmp, i); err != nil {
		return m, err
	}
	return m, nil
}

// trash renames a broken directory into registry/.cargo-shim/trash, to be
// deleted later (gc, or the next repair), outside any path cargo reads.
// Moving a directory to another parent needs write access to the directory
// itself (its ".." changes): a root-owned leftover cannot be moved there by a
// runner's uid. It is then renamed aside in its own parent (needs only the
// parent) under a name cargo never reads, for gc to delete.
func (r Registry) trash(p string, i Instance) error {
	dir := r.TrashDir()
	now, pid := time.Now(), os.Getpid()
	if err := r.mkdirAll(dir, safefs.Shared); err == nil {
		name := leftover{kind: trashed, stem: i.Regdir + "." + i.Dir(), at: now, pid: pid}.String()
		if err := r.rename(p, filepath.Join(dir, name)); err == nil {
			r.dropOlderTrash(i, name)
			return nil
		}
	}
	aside := leftover{kind: setAside, stem: i.Dir(), at: now, pid: pid}.String()
	if err := r.rename(p, filepath.Join(filepath.Dir(p), aside)); err == nil {
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
// freed. Entries it cannot delete (another uid's read-only dirs) stay.
func (r Registry) EmptyTrash(minAge time.Duration) (freed int64, err error) {
	if _, err := r.lstat(r.TrashDir()); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	// Below the registry's descriptor, no link followed: a trash replaced by
	// a symlink fails here instead of being emptied.
	ents, err := r.readDir(r.TrashDir())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	for _, e := range ents {
		p := filepath.Join(r.TrashDir(), e.Name())
		l, ok := parseLeftover(e.Name())
		if !ok || l.kind != trashed {
			continue // not ours
		}
		// The name says when (a rename keeps the directory's old mtime).
		if time.Since(l.at) < minAge {
			continue
		}
		n := r.DiskUsage(p)
		t0 := time.Now()
		if rerr := r.removeAll(p); rerr == nil {
			freed += n
			r.emitTrashed(l, n, t0)
		} else if err == nil {
			err = rerr
		}
	}
	return freed, err
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

// RepairCrate is the one way to change a crate: take its exclusive lock
// (holding no other lock), wait for downloads to settle, check again in full,
// repair. The Finding is the check made under the lock.
func (r Registry) RepairCrate(ctx context.Context, i Instance, o RepairOptions) (act Action, f Finding, err error) {
	path := r.LockPath(i)
	var lk *lockfile.Lock
	var reason string
	if o.NoWait {
		lk, err = lockfile.Try(path, lockfile.Exclusive)
		if lockfile.IsBusy(err) {
			return Action{}, Finding{Instance: i}, ErrInUse
		}
	} else {
		lk, err = lockfile.Acquire(ctx, path, lockfile.Exclusive, lockfile.Options{Waiting: func(string) {
			if o.Waiting != nil {
				o.Waiting(WaitCrate)
			}
		}})
	}
	if err != nil {
		return Action{}, Finding{Instance: i}, err
	}
	defer lk.Release()
	var t0 time.Time
	var repairErr error
	defer func() {
		if err == nil && (act.Kind != "" || act.Left) {
			r.emitRepair(i, act, reason, t0)
		}
	}()
	err = r.Quiesce(ctx, func() {
		if o.Waiting != nil {
			o.Waiting(WaitPackageCache)
		}
	}, func() {
		level := Files
		if o.Deep {
			level = Deep
		}
		f = r.fullCheck(i, level, o.Offline)
		if f.Verdict == Broken {
			reason, t0 = f.Reason, time.Now()
			act, repairErr = r.Repair(f)
			if repairErr == nil {
				if journaled(act.Kind) {
					// Before the lock is released: a run that pins i
					// next finds the record (package shim/targetdir).
					act.Unjournaled = r.noteRepaired(i, time.Now())
				}
				f = r.fullCheck(i, level, o.Offline)
			}
		} else if f.recordable() {
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
	// The stem is "<regdir>.<name>-<version>"; both halves have dots.
	for k := strings.IndexByte(l.stem, '.'); k > 0; k = nextDot(l.stem, k) {
		name, version, ok := splitNameVersion(l.stem[k+1:])
		if ok && ValidRegdir(l.stem[:k]) && validCrate(Crate{Name: name, Version: version}) {
			e.Regdir, e.Crate, e.Version = l.stem[:k], name, version
			break
		}
	}
	r.emit(e)
}

func nextDot(s string, k int) int {
	if n := strings.IndexByte(s[k+1:], '.'); n >= 0 {
		return k + 1 + n
	}
	return -1
}
