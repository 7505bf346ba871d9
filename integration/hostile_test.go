package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
)

// Issue 9: another uid that can write the shared registry can at most deny
// service. Each test plays one attack: the attacker's steps run as uid
// 65534, the victim is root through the drop-in and through `cargo-shim gc,
// repair, verify`; nothing outside the registry may change (a decoy tree
// beside it is snapshotted: names, modes, owners, sizes, mtimes, hashes)
// and no valid extraction may go.

const attacker = 65534

// csi9RacerEnv makes this test binary, copied where uid 65534 may run it,
// the racer of TestHostileMkdirRace instead of the tests.
const csi9RacerEnv = "CSI9_RACER"

func init() {
	if spec := os.Getenv(csi9RacerEnv); spec != "" {
		dir, target, _ := strings.Cut(spec, "\n")
		race(dir, target)
		os.Exit(0)
	}
}

// race swaps whatever directory appears at dir for a symlink to target
// until killed: the Mkdir-then-Chmod attack.
func race(dir, target string) {
	stash := filepath.Join(filepath.Dir(dir), "csi9-stash")
	os.Mkdir(stash, 0o700)
	for n := 0; ; n++ {
		if os.Rename(dir, filepath.Join(stash, strconv.Itoa(n))) == nil {
			os.Symlink(target, dir)
		}
	}
}

// hostileWorld is a warm registry shared with a less-trusted uid: its
// directories are writable by every runner uid, as fleets set it up.
func hostileWorld(t *testing.T) *World {
	w := NewWorld(t)
	w.Warm()
	for d := w.Root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	for _, d := range []string{w.Shared, filepath.Join(w.Shared, "src"), filepath.Join(w.Shared, "src", w.Regdir),
		filepath.Join(w.Shared, "cache"), filepath.Join(w.Shared, "cache", w.Regdir)} {
		os.Chmod(d, 0o777)
	}
	return w
}

// attack runs script with sh as uid 65534 in the registry, with $R the
// regdir and $DECOY the decoy; it returns the error of a step that failed.
func (w *World) attack(script, decoy string) error {
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = w.Shared
	cmd.Env = []string{"PATH=/usr/bin:/bin", "R=" + w.Regdir, "DECOY=" + decoy}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attacker, Gid: attacker}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// mustAttack fails the test when a step the attack needs fails.
func (w *World) mustAttack(script, decoy string) {
	w.t.Helper()
	if err := w.attack(script, decoy); err != nil {
		w.t.Fatalf("attacker (uid %d): %v", attacker, err)
	}
}

// decoy makes a root-owned tree outside the registry that looks like a
// regdir of old crates (marker-less extractions, tarballs, a repair's temp
// dir, a state record): what gc, repair and extraction would act on if
// they followed a link to it.
func (w *World) decoy() (string, safefstest.Tree) {
	w.t.Helper()
	d := filepath.Join(w.Root, "csi9-decoy")
	old := time.Now().Add(-60 * 24 * time.Hour)
	for _, c := range fixtureCrates {
		writeFile(w.t, filepath.Join(d, c.Dir(), "src", "lib.rs"), "decoy "+c.Dir()+"\n")
		writeFile(w.t, filepath.Join(d, c.Dir()+".crate"), "decoy tarball "+c.Dir()+"\n")
		writeFile(w.t, filepath.Join(d, c.Dir()+".lock"), "")
	}
	writeFile(w.t, filepath.Join(d, ".cargo-shim-tmp-flat-1.0.0-1", "lib.rs"), "decoy temp\n")
	filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	snap, err := safefstest.Snapshot(d)
	if err != nil {
		w.t.Fatal(err)
	}
	return d, snap
}

// victim is one root run on the registry.
type victim struct {
	name string
	run  func(w *World) Result
	ok   bool // must exit 0 (fail open)
}

// shimBuild runs the drop-in as root with a real cargo that does nothing,
// so that all that happens is the shim's own work: plain cargo would
// itself follow a symlinked regdir.
func shimBuild(withLock bool) func(w *World) Result {
	return func(w *World) Result {
		dir := w.Workspace(int(time.Now().UnixNano() % 1e9))
		if !withLock {
			os.Remove(filepath.Join(dir, "Cargo.lock"))
		}
		return w.Start(dir, w.Home(), true, []string{"build"}, "CARGO_SHIM_REAL_CARGO=/bin/true").Wait()
	}
}

func adminRun(args ...string) func(w *World) Result {
	return func(w *World) Result { return w.Admin(args...) }
}

var victims = []victim{
	{"build", shimBuild(true), true},
	{"build-without-Cargo.lock", shimBuild(false), true},
	{"gc", adminRun("gc", "--max-age", "720h"), false},
	{"repair", adminRun("repair"), false},
	{"verify", adminRun("verify"), false},
}

// runVictims runs every victim, checking after each that the decoy is
// unchanged and, when keep is set, that the tree at keep (valid
// extractions) is too.
func (w *World) runVictims(decoy string, snap safefstest.Tree, keep string) {
	w.t.Helper()
	var kept safefstest.Tree
	if keep != "" {
		kept, _ = safefstest.Snapshot(keep)
	}
	for _, v := range victims {
		r := v.run(w)
		if v.ok && r.Code != 0 {
			w.t.Errorf("%s as root: exit %d, want 0 (fail open): %s", v.name, r.Code, r)
		}
		safefstest.Unchanged(func(f string, a ...any) { w.t.Errorf(v.name+": "+f, a...) }, decoy, snap)
		if keep != "" {
			safefstest.Unchanged(func(f string, a ...any) { w.t.Errorf(v.name+": valid extractions: "+f, a...) }, keep, kept)
		}
	}
}

// The regdir (src/ or cache/) a symlink to a directory outside: gc, a
// build with Cargo.lock and one without must not act on the target.
func TestHostileRegdirSymlink(t *testing.T) {
	for _, sub := range []string{"src", "cache"} {
		t.Run(sub, func(t *testing.T) {
			w := hostileWorld(t)
			decoy, snap := w.decoy()
			w.mustAttack(fmt.Sprintf(`mv %[1]s/$R %[1]s/$R.real; ln -s "$DECOY" %[1]s/$R`, sub), decoy)
			w.runVictims(decoy, snap, filepath.Join(w.Shared, sub, w.Regdir+".real"))
		})
	}
}

// `.cargo-shim/locks` renamed and replaced by a symlink. With root's shim
// directories sticky the rename itself is refused; an attacker that
// replaces all of .cargo-shim (the registry root is not sticky) gets only
// lock directories that resolve nowhere.
func TestHostileLocksDirSymlink(t *testing.T) {
	w := hostileWorld(t)
	decoy, snap := w.decoy()
	home := w.Home()
	w.MustCargo(home, true, "build")
	for _, sub := range []string{"locks", "cargo", "state"} {
		if err := w.attack(`mv .cargo-shim/`+sub+` .cargo-shim/`+sub+`.x`, decoy); err == nil {
			t.Errorf("uid 65534 renamed root's .cargo-shim/%s: the shim's directories are not sticky", sub)
		}
	}
	// cargo's own package-cache lock of this home leads into the registry
	// too: the same home's cargo must not follow it out.
	w.mustAttack(`mv .cargo-shim .cargo-shim.x; mkdir -m 777 .cargo-shim
		ln -s "$DECOY" .cargo-shim/locks; ln -s "$DECOY" .cargo-shim/cargo
		for f in .cargo-shim-package-cache .cargo-shim-package-cache-mutate; do
			rm -f $f; ln -s "$DECOY/$f" $f
		done`, decoy)
	w.realBuildIn(home, decoy, snap)
	w.realBuild(decoy, snap)
	w.runVictims(decoy, snap, w.Extraction(""))
}

// realBuild runs a real cargo build through the shim as root: it passes
// (fail open), the app runs, the decoy is unchanged, the registry healthy.
func (w *World) realBuild(decoy string, snap safefstest.Tree) {
	w.t.Helper()
	w.realBuildIn(w.Home(), decoy, snap)
}

func (w *World) realBuildIn(home, decoy string, snap safefstest.Tree) {
	w.t.Helper()
	w.MustCargo(home, true, "build")
	if got := w.RunApp(home); got != wantApp {
		w.t.Errorf("app printed %q, want %q", got, wantApp)
	}
	safefstest.Unchanged(w.t.Errorf, decoy, snap)
	w.AssertHealthy()
}

// The state directory (records, plans) swapped for a symlink, at each level.
func TestHostileStateDirSymlink(t *testing.T) {
	for _, link := range []string{"state", "state/$R", "state/plans"} {
		t.Run(strings.ReplaceAll(link, "/", "-"), func(t *testing.T) {
			w := hostileWorld(t)
			decoy, snap := w.decoy()
			w.mustAttack(`mkdir -m 777 -p .cargo-shim/state; ln -s "$DECOY" .cargo-shim/`+link, decoy)
			w.realBuild(decoy, snap)
			w.runVictims(decoy, snap, w.Extraction(""))
		})
	}
}

// A root run must not be raced into chmodding a directory outside the
// registry: the attacker owns .cargo-shim/locks and swaps the regdir lock
// directory root creates in it for a symlink, as fast as it can.
func TestHostileMkdirRace(t *testing.T) {
	w := hostileWorld(t)
	target := filepath.Join(w.Root, "csi9-race-target")
	os.Mkdir(target, 0o755)
	before, _ := safefstest.Snapshot(target)
	w.mustAttack(`mkdir -m 777 -p .cargo-shim/locks`, target)
	racer := w.startRacer(filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir), target)
	lockDir := filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir)
	build := shimBuild(true)
	const tries = 300
	for n := 0; n < tries; n++ {
		os.RemoveAll(lockDir) // root forgets the directory: the next run creates it
		if r := build(w); r.Code != 0 {
			t.Fatalf("try %d: build exit %d: %s", n, r.Code, r)
		}
		if fi, _ := os.Lstat(target); fi.Mode().Perm() != 0o755 {
			t.Fatalf("race won after %d tries: %s is %v", n+1, target, fi.Mode())
		}
	}
	racer()
	safefstest.Unchanged(t.Errorf, target, before)
}

// attackerCmd is this test binary, copied to root/name (the attacker
// cannot execute root's build cache) and set to run as uid 65534 with the
// one variable env that makes it play an attacker's part instead of
// running tests. Not yet started.
func attackerCmd(t testing.TB, root, name, env string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, name)
	if out, err := exec.Command("cp", self, bin).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	os.Chmod(bin, 0o755)
	cmd := exec.Command(bin)
	cmd.Env = []string{env}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attacker, Gid: attacker}}
	return cmd
}

// startAttacker starts attackerCmd; the returned func (also a cleanup)
// stops it.
func startAttacker(t testing.TB, root, name, env string) func() {
	t.Helper()
	cmd := attackerCmd(t, root, name, env)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(stop)
	return stop
}

// startRacer starts the racer as uid 65534; the returned func stops it.
func (w *World) startRacer(dir, target string) func() {
	w.t.Helper()
	return startAttacker(w.t, w.Root, "csi9-racer", csi9RacerEnv+"="+dir+"\n"+target)
}

// A plan record (whose mtime each run refreshes) and a lock file replaced
// by symlinks to files outside: no time or mode change may go through.
func TestHostileChtimesThroughLink(t *testing.T) {
	w := hostileWorld(t)
	decoy, snap := w.decoy()
	w.mustAttack(`mkdir -m 777 -p .cargo-shim/state/plans .cargo-shim/locks/$R`, decoy)
	w.MustCargo(w.Home(), true, "build")
	w.mustAttack(`for p in .cargo-shim/state/plans/*; do rm -f "$p"; ln -s "$DECOY/flat-1.0.0/src/lib.rs" "$p"; done
		for c in .cargo-shim/locks/$R/*.lock; do rm -f "$c"; ln -s "$DECOY/$(basename "$c")" "$c"; done`, decoy)
	w.realBuild(decoy, snap)
	w.runVictims(decoy, snap, w.Extraction(""))
}

// A state record forged by another uid, naming a checksum no tarball has
// and a file that does not exist, with the tarball (which would otherwise
// be believed instead) deleted, must not make a root run delete the valid
// extraction it describes: a record only makes the shim look closer.
func TestHostileForgedStateRecord(t *testing.T) {
	w := hostileWorld(t)
	decoy, snap := w.decoy()
	forged := "cargo-shim-state 1\nsha256 " + strings.Repeat("ab", 32) + "\nrecorded 1\n" +
		"marker 1 0 1 1\nd 1 0 1 1 .\nf 10 src/forged-missing.rs\nf 27 lib.rs\n"
	w.mustAttack(`rm cache/$R/flat-1.0.0.crate; mkdir -m 777 -p .cargo-shim/state/$R
		cat > .cargo-shim/state/$R/flat-1.0.0 <<'EOF'
`+forged+`EOF`, decoy)
	keep := w.Extraction("flat-1.0.0")
	w.runVictims(decoy, snap, keep)
	w.realBuild(decoy, snap)
}
