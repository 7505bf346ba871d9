package store

import (
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/events"
)

// Registry is a shared $CARGO_HOME/registry directory.
type Registry struct {
	Root string
	// CargoLock is the download lock cargo takes for the runs this
	// Registry serves, when it is not the registry's shared one (a home
	// whose registry is not shared keeps its own).
	CargoLock string
	// Events, if set, hears of every change the store makes to a crate:
	// a repair or extraction (RepairCrate), a removal (Collect,
	// EmptyTrash). The store knows nothing of where they go.
	Events events.Sink
	at     *stater // optional: set by CheckPlan and CheckAll
}

// emit passes e to Events, if any.
func (r Registry) emit(e events.Event) {
	if r.Events != nil {
		r.Events.Emit(e)
	}
}

// event is an event about instance i.
func event(kind, action string, i Instance, t0 time.Time) events.Event {
	return events.Event{Kind: kind, Action: action, Crate: i.Name, Version: i.Version, Regdir: i.Regdir, Seconds: time.Since(t0).Seconds()}
}

// Crate is one registry package of a Cargo.lock: a lock entry.
type Crate struct {
	Name     string
	Version  string
	Checksum string // sha256 of the .crate, from Cargo.lock; may be empty
}

// Dir is the name of its extraction and tarball stem: <name>-<version>.
func (c Crate) Dir() string { return c.Name + "-" + c.Version }

func (c Crate) String() string { return c.Name + " v" + c.Version }

// Instance is a crate inside one regdir (one registry's subdirectory of
// src/ and cache/). The same name and version may live in several regdirs,
// with different bytes: the regdir is part of the identity.
type Instance struct {
	Crate
	Regdir string
}

func (i Instance) String() string { return i.Crate.String() + " (" + i.Regdir + ")" }

func (r Registry) ShimDir() string { return filepath.Join(r.Root, ".cargo-shim") }

// HoldersDir holds the notes of the runs that hold locks now
// (lockfile.PublishNote): who a waiting runner waits for.
func (r Registry) HoldersDir() string { return filepath.Join(r.ShimDir(), "holders") }

// Extraction is where cargo unpacks the crate.
func (r Registry) Extraction(i Instance) string {
	return filepath.Join(r.Root, "src", i.Regdir, i.Dir())
}

// Tarball is where cargo keeps the downloaded .crate.
func (r Registry) Tarball(i Instance) string {
	return filepath.Join(r.Root, "cache", i.Regdir, i.Dir()+".crate")
}

// LockPath is the per-crate lock file, beside (not inside) what it guards.
func (r Registry) LockPath(i Instance) string {
	return lockPathIn(filepath.Join(r.ShimDir(), "locks"), i)
}

// lockPathIn is LockPath below locks, the cleaned locks directory: a plain
// concatenation where the regdir and the crate's directory are single
// components (a plan's are validated so), which is what filepath.Join
// would give; a warm run builds hundreds.
func lockPathIn(locks string, i Instance) string {
	dir := i.Dir()
	if component(i.Regdir) && component(dir) {
		return locks + "/" + i.Regdir + "/" + dir + ".lock"
	}
	return filepath.Join(locks, i.Regdir, dir+".lock")
}

// component: a non-empty name of one path component, neither "." nor "..".
func component(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsRune(s, '/')
}

// ColdLock is held shared by runs that download crates into a registry with
// no index yet, and taken exclusively by gc before it removes any crate.
func (r Registry) ColdLock() string { return filepath.Join(r.ShimDir(), "locks", "cold.lock") }

// FetchLock is held exclusively by a run that fetches cold crates into a
// registry on NFS, where cargo takes no lock of its own (see shim's
// fetchCold); never held while a build runs.
func (r Registry) FetchLock() string { return filepath.Join(r.ShimDir(), "locks", "fetch.lock") }

// RepairLock is held exclusively by a repair made while builds pin the
// crate (they hold its lock shared, so the repair can take it only shared):
// it keeps two such repairs from swapping the same directory at once. It is
// taken after a crate's lock, and its holders wait for nothing but cargo's
// downloads.
func (r Registry) RepairLock() string { return filepath.Join(r.ShimDir(), "locks", "repair.lock") }

// StatePath records what a verified extraction contains.
func (r Registry) StatePath(i Instance) string {
	return filepath.Join(r.ShimDir(), "state", i.Regdir, i.Dir())
}

func (r Registry) TrashDir() string { return filepath.Join(r.ShimDir(), "trash") }

// Regdirs lists the registry subdirectories present under index/, src/ and
// cache/, sorted.
func (r Registry) Regdirs() []string {
	seen := map[string]bool{}
	for _, sub := range []string{"index", "src", "cache"} {
		ents, err := r.readDir(filepath.Join(r.Root, sub))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() && ValidRegdir(e.Name()) {
				seen[e.Name()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Locate returns the instances of c present (extracted or cached) in any of
// regdirs. present is false when no regdir holds it yet (a cold crate).
func (r Registry) Locate(c Crate, regdirs []string) (found []Instance) {
	for _, d := range regdirs {
		i := Instance{Crate: c, Regdir: d}
		if _, err := r.lstat(r.Extraction(i)); err == nil {
			found = append(found, i)
			continue
		}
		if _, err := r.lstat(r.Tarball(i)); err == nil {
			found = append(found, i)
		}
	}
	return found
}

// AllInstances lists every extraction and tarball in the registry, for runs
// with no Cargo.lock and for the admin command. Checksums are unknown.
func (r Registry) AllInstances() []Instance {
	seen := map[Instance]bool{}
	var out []Instance
	add := func(regdir, stem string) {
		name, version, ok := splitNameVersion(stem)
		if !ok || !validCrate(Crate{Name: name, Version: version}) {
			// Not a name cargo makes: another uid's file, never a path
			// to build on.
			return
		}
		i := Instance{Crate: Crate{Name: name, Version: version}, Regdir: regdir}
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	for _, d := range r.Regdirs() {
		if ents, err := r.readDir(filepath.Join(r.Root, "src", d)); err == nil {
			for _, e := range ents {
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					add(d, e.Name())
				}
			}
		}
		if ents, err := r.readDir(filepath.Join(r.Root, "cache", d)); err == nil {
			for _, e := range ents {
				if stem, ok := strings.CutSuffix(e.Name(), ".crate"); ok && !strings.HasPrefix(stem, ".") {
					add(d, stem)
				}
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Regdir != out[b].Regdir {
			return out[a].Regdir < out[b].Regdir
		}
		return out[a].Dir() < out[b].Dir()
	})
	return out
}

// splitNameVersion splits "<name>-<version>". Names may contain '-', so the
// version starts at the first '-' followed by MAJOR.MINOR.PATCH.
func splitNameVersion(s string) (name, version string, ok bool) {
	for i := 1; i < len(s); i++ {
		if s[i] == '-' && isSemverStart(s[i+1:]) {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func isSemverStart(v string) bool {
	for part := 0; part < 3; part++ {
		n := 0
		for n < len(v) && v[n] >= '0' && v[n] <= '9' {
			n++
		}
		if n == 0 {
			return false
		}
		v = v[n:]
		if part < 2 {
			if v == "" || v[0] != '.' {
				return false
			}
			v = v[1:]
		}
	}
	return v == "" || v[0] == '-' || v[0] == '+'
}

// ParseInstance reads "<name>-<version>" in regdir.
func ParseInstance(regdir, stem string) (Instance, bool) {
	name, version, ok := splitNameVersion(stem)
	c := Crate{Name: name, Version: version}
	return Instance{Crate: c, Regdir: regdir}, ok && validCrate(c) && ValidRegdir(regdir)
}

// NotReal lists the registry's directories that another uid may have
// replaced and that are not real directories (a symlink, a file): the
// regdirs under index/, src/ and cache/, and the shim's own. Every
// operation below the registry refuses to pass through them (safefs), so
// the crates behind them are skipped; callers warn about each once.
func (r Registry) NotReal() []string {
	var out []string
	check := func(p string) {
		if fi, err := r.lstat(p); err == nil && !fi.IsDir() {
			out = append(out, p)
		}
	}
	for _, sub := range []string{"index", "src", "cache"} {
		check(filepath.Join(r.Root, sub))
		ents, _ := r.readDir(filepath.Join(r.Root, sub))
		for _, e := range ents {
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Type()&fs.ModeSymlink != 0 {
				out = append(out, filepath.Join(r.Root, sub, e.Name()))
			}
		}
	}
	check(r.ShimDir())
	for _, sub := range []string{"locks", "state", "state/plans", "trash", "cargo"} {
		check(filepath.Join(r.ShimDir(), sub))
	}
	return out
}
