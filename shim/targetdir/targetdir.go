// Package targetdir makes a cargo target dir rebuild the registry crates
// the shim repaired since the dir last looked. Cargo never compares the
// mtimes of registry sources, so an artifact compiled from a damaged
// extraction stays "fresh" after the repair; removing that crate's
// fingerprints makes cargo compile it (and, by mtime, what depends on it)
// again.
//
// It changes nothing in a target dir but entries <name>-<16 hex> of
// <profile>/.fingerprint/ (and of <triple>/<profile>/.fingerprint/), and its
// own marker file; no link below the dir is followed. It imports nothing of
// the project but safefs.
package targetdir

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// MarkerName is the file in a target dir that remembers the repair
// journal's stamp the dir was last brought up to date with.
const MarkerName = ".cargo-shim-repairs"

// markerHeader opens the marker; the number is its format.
const markerHeader = "cargo-shim-target 1"

// Slack is how much older than a repair a fingerprint must be to be
// removed, counted back from the repair: the repair's time comes from the
// repairing host's clock, the fingerprint's from this host's filesystem, and
// two hosts' clocks differ. A fingerprint written up to Slack after a repair
// is removed too (one needless rebuild); one written before it always is.
const Slack = 10 * time.Minute

// Repair is one journaled repair: crate Name, at At.
type Repair struct {
	Name string
	At   time.Time
}

// Result is what Sync did.
type Result struct {
	Removed []string // fingerprint dirs removed, relative to the target dir
	Busy    []string // profiles skipped: a cargo is building there
}

// Sync brings the target dir dir up to date with the repair journal whose
// stamp is stamp. The marker is read first: the same stamp means nothing
// was repaired since, and nothing else is read (the warm path). Otherwise
// repairs() lists the journal, every fingerprint of a repaired crate older
// than its repair (less Slack) is removed, and the marker is rewritten,
// unless a profile was busy (a cargo building there holds cargo's lock;
// the next run tries again). A dir that is missing or not cargo's is left
// alone. An empty stamp is a journal still changing (another uid may keep
// it so): the dir is synced and no marker is read or written, so the next
// run looks again.
func Sync(dir, stamp string, repairs func() ([]Repair, error)) (Result, error) {
	var res Result
	d, err := safefs.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer d.Close()
	if seen, err := d.ReadFile(MarkerName, 4096); err == nil && stamp != "" && string(seen) == markerHeader+"\n"+stamp+"\n" {
		return res, nil
	}
	if !isTargetDir(d) {
		return res, nil
	}
	list, err := repairs()
	if err != nil {
		return res, err
	}
	for _, p := range profiles(d) {
		removed, busy, err := syncProfile(d, p, list)
		res.Removed = append(res.Removed, removed...)
		if err != nil {
			return res, err
		}
		if busy {
			res.Busy = append(res.Busy, p)
		}
	}
	if len(res.Busy) > 0 || stamp == "" {
		return res, nil
	}
	return res, d.WriteFile(MarkerName, []byte(markerHeader+"\n"+stamp+"\n"), 0o644)
}

// isTargetDir: cargo tags every target dir it creates (CACHEDIR.TAG) and
// keeps rustc's version there; a dir with neither was not made by cargo.
func isTargetDir(d *safefs.Dir) bool {
	for _, name := range []string{"CACHEDIR.TAG", ".rustc_info.json"} {
		if fi, err := d.Lstat(name); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// profiles lists the dirs of d holding a .fingerprint dir: <profile> and
// <triple>/<profile>, real directories only.
func profiles(d *safefs.Dir) []string {
	var out []string
	top, _ := d.ReadDir(".")
	for _, e := range top {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if isDir(d, path.Join(e.Name(), ".fingerprint")) {
			out = append(out, e.Name())
			continue
		}
		sub, _ := d.ReadDir(e.Name())
		for _, s := range sub {
			p := path.Join(e.Name(), s.Name())
			if s.IsDir() && !strings.HasPrefix(s.Name(), ".") && isDir(d, path.Join(p, ".fingerprint")) {
				out = append(out, p)
			}
		}
	}
	return out
}

func isDir(d *safefs.Dir, rel string) bool {
	fi, err := d.Lstat(rel)
	return err == nil && fi.IsDir()
}

// syncProfile removes, under cargo's own build lock of the profile (a
// cargo building there could be about to write a fingerprint we remove),
// the fingerprints of repaired crates that predate their repair.
func syncProfile(d *safefs.Dir, profile string, list []Repair) (removed []string, busy bool, err error) {
	release, busy, err := lockProfile(d, profile)
	if err != nil || busy {
		return nil, busy, err
	}
	defer release()
	fp := path.Join(profile, ".fingerprint")
	ents, err := d.ReadDir(fp)
	if err != nil {
		return nil, false, err
	}
	latest := map[string]time.Time{} // crate name -> its latest repair
	for _, r := range list {
		if r.At.After(latest[r.Name]) {
			latest[r.Name] = r.At
		}
	}
	for _, e := range ents {
		name, ok := crateOf(e.Name())
		at, repaired := latest[name]
		if !ok || !repaired || !e.IsDir() {
			continue
		}
		rel := path.Join(fp, e.Name())
		if newest(d, rel).After(at.Add(Slack)) {
			continue // compiled after the repair
		}
		if err := d.RemoveAll(rel); err != nil {
			return removed, false, err
		}
		removed = append(removed, rel)
	}
	return removed, false, nil
}

// lockProfile takes cargo's build lock of a profile dir without waiting.
// No lock file: no cargo ever built there, nothing to lock against.
func lockProfile(d *safefs.Dir, profile string) (release func(), busy bool, err error) {
	f, err := d.Open(path.Join(profile, ".cargo-lock"))
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, false, nil
}

// crateOf reads a fingerprint dir's name, <package name>-<16 hex digits>.
func crateOf(entry string) (string, bool) {
	k := strings.LastIndexByte(entry, '-')
	if k <= 0 || len(entry)-k-1 != 16 {
		return "", false
	}
	for _, c := range entry[k+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return entry[:k], true
}

// newest is the latest mtime of rel and the entries directly in it: cargo
// rewrites a unit's fingerprint files in place when it compiles it.
func newest(d *safefs.Dir, rel string) time.Time {
	var t time.Time
	if fi, err := d.Lstat(rel); err == nil {
		t = fi.ModTime()
	}
	ents, _ := d.ReadDir(rel)
	for _, e := range ents {
		if fi, err := d.Lstat(path.Join(rel, e.Name())); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// Settings are where cargo was told to build.
type Settings struct {
	Flag           string // --target-dir
	TargetDir      string // CARGO_TARGET_DIR
	BuildTargetDir string // CARGO_BUILD_TARGET_DIR
	BuildDir       string // CARGO_BUILD_BUILD_DIR
}

// Locate is the dir holding the fingerprints of a cargo command run in cwd
// (relative settings are relative to it): cargo's build dir if set, else
// its target dir, in cargo's order of precedence, else <workspace>/target
// when workspace (the directory of the Cargo.lock) is known. ok is false
// when it cannot be told without reading cargo's config (a build-dir
// template, no workspace).
func Locate(s Settings, cwd, workspace string) (dir string, ok bool) {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(cwd, p)
	}
	if s.BuildDir != "" {
		if strings.Contains(s.BuildDir, "{") {
			return "", false // a template: cargo's to expand
		}
		return abs(s.BuildDir), true
	}
	for _, v := range []string{s.Flag, s.TargetDir, s.BuildTargetDir} {
		if v != "" {
			return abs(v), true
		}
	}
	if workspace == "" {
		return "", false
	}
	return filepath.Join(workspace, "target"), true
}
