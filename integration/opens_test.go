package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
)

// Issue 17, items 4 and 5: no open of the shim's blocks, and root's home
// never links into a place another uid can swap. The attacker's steps run
// as uid 65534; root runs through the drop-in with a real cargo unless
// said otherwise.

// openLockTimeout is the victims' CARGO_SHIM_LOCK_TIMEOUT; hangGuard is
// how long a run may take before the test calls it hung and kills it. It
// is not a speed assertion: a run that ends at all ends in seconds, and a
// run blocked in open(2) never does (the guard is generous for a loaded
// machine, on top of the lock timeout).
const (
	openLockTimeout = 20 * time.Second
	hangGuard       = openLockTimeout + 4*time.Minute
)

// csi17FlipperEnv makes this test binary, copied where uid 65534 may run
// it, the flipper of TestHostilePackageCacheFlip.
const csi17FlipperEnv = "CSI17_FLIPPER"

func init() {
	if spec := os.Getenv(csi17FlipperEnv); spec != "" {
		name, target, _ := strings.Cut(spec, "\n")
		flip(name, target)
		os.Exit(0)
	}
}

// flip turns name into a regular file, then into a symlink to target, and
// back, until killed: each by a rename, so that name is never missing.
func flip(name, target string) {
	tmp := name + ".csi17"
	for {
		os.Remove(tmp)
		if f, err := os.Create(tmp); err == nil {
			f.Close()
			os.Rename(tmp, name)
		}
		os.Remove(tmp)
		if os.Symlink(target, tmp) == nil {
			os.Rename(tmp, name)
		}
	}
}

// boundedRun runs cargo as root through the shim in dir with home and
// fails the test if it has not ended within hangGuard.
func (w *World) boundedRun(dir, home string, args []string, extra ...string) Result {
	w.t.Helper()
	return w.runWithin(hangGuard, dir, home, args, extra...)
}

// runWithin is boundedRun with guard as the hang guard.
func (w *World) runWithin(guard time.Duration, dir, home string, args []string, extra ...string) Result {
	w.t.Helper()
	extra = append(extra, "CARGO_SHIM_LOCK_TIMEOUT="+openLockTimeout.String())
	p := w.Start(dir, home, true, args, extra...)
	done := make(chan Result, 1)
	go func() { done <- p.Wait() }()
	select {
	case r := <-done:
		return r
	case <-time.After(guard):
		p.KillGroup()
		r := <-done
		w.t.Fatalf("cargo %v as root did not end (blocked?): %s", args, r)
		return r
	}
}

// rootOnly is a root-owned 0700 directory outside the registry, where only
// root could create a file, with its snapshot.
func (w *World) rootOnly() (string, safefstest.Tree) {
	w.t.Helper()
	d := filepath.Join(w.Root, "csi17-root-only")
	if err := os.Mkdir(d, 0o700); err != nil {
		w.t.Fatal(err)
	}
	writeFile(w.t, filepath.Join(d, "keep"), "root's\n")
	snap, err := safefstest.Snapshot(d)
	if err != nil {
		w.t.Fatal(err)
	}
	return d, snap
}

// stickyRegistry is a registry root root owns, sticky and world-writable
// (01777): the layout where root shares cargo's lock with other uids that
// write the registry root.
func stickyRegistry(t *testing.T) *World {
	w := hostileWorld(t)
	os.Chmod(w.Shared, 0o777|os.ModeSticky)
	return w
}

// A FIFO another uid planted where every home's cargo lock points (before
// root made the file, in a sticky registry root; or in place of root's file,
// in a world-writable one) must neither hang root's `cargo build` or `cargo
// update` nor reach cargo: root either replaces what it proved is not a
// regular file with a file of its own, or keeps its own lock.
func TestHostileFIFOAtPackageCache(t *testing.T) {
	for _, layout := range []string{"sticky", "world-writable"} {
		t.Run(layout, func(t *testing.T) {
			var w *World
			home := ""
			if layout == "sticky" {
				w = stickyRegistry(t)
			} else {
				w = hostileWorld(t)
				// Root's home was linked while the registry root was root's
				// alone; then it was opened to every uid.
				os.Chmod(w.Shared, 0o755)
				home = w.Home()
				w.MustCargo(home, true, "build")
				if _, err := os.Readlink(filepath.Join(home, ".package-cache")); err != nil {
					t.Fatalf("root's home was not linked in a root-only registry: %v", err)
				}
				os.Chmod(w.Shared, 0o777)
			}
			decoy, snap := w.decoy()
			w.mustAttack(`for f in .cargo-shim-package-cache .cargo-shim-package-cache-mutate; do
				rm -f $f; mkfifo -m 666 $f; done`, decoy)
			if home == "" {
				home = w.Home()
			}
			for _, args := range [][]string{{"build"}, {"update"}, {"build"}} {
				r := w.boundedRun(w.Work, home, args)
				if r.Code != 0 {
					t.Fatalf("cargo %v as root: %s", args, r)
				}
			}
			target, linkErr := os.Readlink(filepath.Join(home, ".package-cache"))
			var st syscall.Stat_t
			err := syscall.Lstat(filepath.Join(w.Shared, ".cargo-shim-package-cache"), &st)
			switch layout {
			case "sticky":
				if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Uid != 0 {
					t.Errorf("root did not replace the FIFO with a file of its own: %v mode %o uid %d", err, st.Mode, st.Uid)
				}
				if linkErr != nil {
					t.Errorf("root's home does not share cargo's lock in a sticky root-owned registry: %v", linkErr)
				}
			default:
				if linkErr == nil {
					t.Errorf("root's home still links to %s, in a registry root other uids write", target)
				}
			}
			safefstest.Unchanged(t.Errorf, decoy, snap)
			w.AssertHealthy()
		})
	}
}

// A FIFO at the stats lock of a fresh registry (stats are written at the
// end of a run that planned): the run ends, names the file, and builds.
func TestHostileFIFOAtStatsLock(t *testing.T) {
	w := NewWorld(t)
	for d := w.Root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.Chmod(w.Shared, 0o777)
	w.Lock()
	decoy, snap := w.decoy()
	w.mustAttack(`mkdir -m 777 -p .cargo-shim/stats; mkfifo -m 666 .cargo-shim/stats/totals.lock`, decoy)
	home := w.Home()
	r := w.boundedRun(w.Work, home, []string{"build"})
	if r.Code != 0 {
		t.Fatalf("cold build as root: %s", r)
	}
	if !strings.Contains(r.Stderr, "totals.lock") {
		t.Errorf("the planted stats lock is not named:\n%s", r.Stderr)
	}
	if got := w.RunApp(home); got != wantApp {
		t.Errorf("app printed %q, want %q", got, wantApp)
	}
	safefstest.Unchanged(t.Errorf, decoy, snap)
}

// A FIFO planted, before root's first run through the shim, where the shim
// will open a file of its own or of cargo's: a lock file, a state record,
// a plan record, a tarball, an index cache entry. Every root run ends,
// passes, leaves nothing outside the registry changed; the lock file, which
// the run cannot do without, is named.
func TestHostileFIFOInRegistry(t *testing.T) {
	cases := []struct {
		name, setup, named string
		args               []string
		realCargo          bool
		healed             string // what no longer is a FIFO afterwards
	}{
		{"lock-file", `mkdir -m 777 -p .cargo-shim/locks/$R; mkfifo .cargo-shim/locks/$R/flat-1.0.0.lock`, "flat-1.0.0.lock", []string{"build"}, true,
			".cargo-shim/locks/%s/flat-1.0.0.lock"},
		{"state-record", `mkdir -m 777 -p .cargo-shim/state/$R; mkfifo .cargo-shim/state/$R/flat-1.0.0`, "", []string{"build"}, true,
			".cargo-shim/state/%s/flat-1.0.0"},
		{"plan-record", `mkdir -m 777 -p .cargo-shim/state/plans; mkfifo .cargo-shim/state/plans/$(sha256sum "$WORK/Cargo.lock" | cut -c1-32)`, "", []string{"build"}, true, ""},
		{"tarball", `rm cache/$R/flat-1.0.0.crate; mkfifo cache/$R/flat-1.0.0.crate`, "", []string{"build"}, true,
			"cache/%s/flat-1.0.0.crate"},
		// cargo itself reads the index cache: only the shim's planning of
		// `cargo install` is at stake here (plain cargo would hang too).
		{"index-cache", `f=index/$R/.cache/fl/at/flat; rm -f $f; mkfifo $f`, "", []string{"install", "flat"}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := hostileWorld(t)
			os.Chmod(filepath.Join(w.Shared, "index", w.Regdir, ".cache", "fl", "at"), 0o777)
			decoy, snap := w.decoy()
			w.mustAttack("WORK="+w.Work+"\n"+c.setup, decoy)
			home := w.Home()
			var extra []string
			if !c.realCargo {
				extra = append(extra, "CARGO_SHIM_REAL_CARGO=/bin/true")
			}
			r := w.boundedRun(w.Work, home, c.args, extra...)
			if r.Code != 0 {
				t.Fatalf("cargo %v as root: %s", c.args, r)
			}
			if c.named != "" && !strings.Contains(r.Stderr, c.named) {
				t.Errorf("the planted FIFO is not named:\n%s", r.Stderr)
			}
			if c.realCargo {
				if got := w.RunApp(home); got != wantApp {
					t.Errorf("app printed %q, want %q", got, wantApp)
				}
			}
			for _, v := range victims {
				v.run(w) // gc, repair, verify, builds: each ends
			}
			if c.healed != "" {
				p := filepath.Join(w.Shared, fmt.Sprintf(c.healed, w.Regdir))
				if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
					t.Errorf("%s is still a FIFO after builds, gc and repair", p)
				}
			}
			safefstest.Unchanged(t.Errorf, decoy, snap)
		})
	}
}

// Another uid flips the registry file every home's cargo lock points at
// between a regular file and a symlink into a root-only directory while
// root builds: root's cargo must never create a file there (root keeps
// its own lock when another uid can replace the registry's).
func TestHostilePackageCacheFlip(t *testing.T) {
	w := hostileWorld(t)
	dir, snap := w.rootOnly()
	decoy, dsnap := w.decoy()
	stop := w.startFlipper(filepath.Join(w.Shared, ".cargo-shim-package-cache"), filepath.Join(dir, "planted"))
	home := w.Home()
	const builds = 20
	for n := 0; n < builds; n++ {
		args := []string{"build"}
		if n%2 == 1 {
			args = []string{"fetch"}
		}
		if r := w.boundedRun(w.Work, home, args); r.Code != 0 {
			t.Fatalf("run %d: cargo %v as root: %s", n, args, r)
		}
		if _, err := os.Lstat(filepath.Join(dir, "planted")); err == nil {
			t.Fatalf("run %d: root's cargo created a file in a root-only directory through the flipped link", n)
		}
	}
	stop()
	safefstest.Unchanged(t.Errorf, dir, snap)
	safefstest.Unchanged(t.Errorf, decoy, dsnap)
}

// startFlipper starts the flipper as uid 65534; the returned func stops it.
func (w *World) startFlipper(name, target string) func() {
	w.t.Helper()
	return startAttacker(w.t, w.Root, "csi17-flipper", csi17FlipperEnv+"="+name+"\n"+target)
}

// `cargo-shim init --group` (as root) gives a mixed-uid registry the layout
// in which root shares cargo's lock with the members: the registry root is
// made sticky, and lock files another uid made earlier become root's.
func TestInitGroupLetsRootShare(t *testing.T) {
	group, _ := sharedGroup(t)
	w := NewWorld(t)
	w.Warm()
	for _, n := range []string{".cargo-shim-package-cache", ".cargo-shim-package-cache-mutate"} {
		p := filepath.Join(w.Shared, n)
		writeFile(t, p, "")
		os.Chown(p, attacker, attacker) // a member's run made it before init
	}
	if r := w.Admin("init", "--group", group); r.Code != 0 {
		t.Fatalf("init: %s", r)
	}
	if fi, err := os.Stat(w.Shared); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("init left the registry root not sticky: %v %v", fi.Mode(), err)
	}
	for _, n := range []string{".cargo-shim-package-cache", ".cargo-shim-package-cache-mutate"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(w.Shared, n), &st); err != nil || st.Uid != 0 || st.Mode&0o666 != 0o666 {
			t.Errorf("%s after init: uid %d mode %o (%v), want root's and 0666", n, st.Uid, st.Mode, err)
		}
	}
	home := w.Home()
	r := w.boundedRun(w.Work, home, []string{"build", "-v"})
	if r.Code != 0 {
		t.Fatalf("root's build: %s", r)
	}
	if _, err := os.Readlink(filepath.Join(home, ".package-cache")); err != nil || strings.Contains(r.Stderr, "Unshared") {
		t.Errorf("root does not share cargo's lock after init --group: %v\n%s", err, r.Stderr)
	}
	if st := w.Admin("status"); strings.Contains(st.Stdout, "not for root runs") {
		t.Errorf("status says root does not share:\n%s", st.Stdout)
	}
}
