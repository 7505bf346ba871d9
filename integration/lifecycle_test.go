package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// What the shim points a shared home's cargo lock files at: files in the
// registry root, as the runner sees it.
var sharedLockNames = [][2]string{
	{".package-cache", ".cargo-shim-package-cache"},
	{".package-cache-mutate", ".cargo-shim-package-cache-mutate"},
}

// Section 4: cargo opens its lock with O_CREAT through a link whose target
// is gone, and so makes the target again, as long as the target's directory
// exists. That is why the links name files in the registry root (the mount
// point, always there) and not in a directory a wipe removes.
func TestFactCargoCreatesItsLockThroughADanglingLink(t *testing.T) {
	w := NewWorld(t)
	w.Lock()
	home := w.Home()
	for _, n := range sharedLockNames {
		os.Symlink(filepath.Join(home, "registry", n[1]), filepath.Join(home, n[0]))
	}
	w.MustCargo(home, false, "build")
	for _, n := range sharedLockNames {
		if fi, err := os.Lstat(filepath.Join(w.Shared, n[1])); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("cargo did not create %s through the link: %v", n[1], err)
		}
	}
	gone := w.Home()
	os.Symlink(filepath.Join(gone, "registry", ".cargo-shim", "cargo", ".package-cache"), filepath.Join(gone, ".package-cache"))
	r := w.Cargo(gone, false, []string{"build"})
	if r.Code == 0 {
		t.Fatalf("cargo now creates the directory of a dangling lock link; the links could go anywhere: %s", r)
	}
	if !strings.Contains(r.Stderr, "failed to open: "+filepath.Join(gone, ".package-cache")) {
		t.Errorf("plain cargo failed otherwise than expected: %s", r)
	}
}

// registryEvent is something an admin does to a shared registry while the
// runners' homes persist.
type registryEvent struct {
	name string
	do   func(t testing.TB, w *World, homes []string)
}

var registryEvents = []registryEvent{
	{"contents-wiped", func(t testing.TB, w *World, _ []string) { wipeContents(t, w.Shared) }},
	{"shim-dir-removed", func(t testing.TB, w *World, _ []string) { mustRemoveAll(t, filepath.Join(w.Shared, ".cargo-shim")) }},
	{"dir-recreated", func(t testing.TB, w *World, _ []string) { recreateRegistry(t, w) }},
	{"empty-mount", func(t testing.TB, w *World, homes []string) { w.NewVolume(t, homes) }},
}

// recreateRegistry removes the registry directory and makes it again, empty.
func recreateRegistry(t testing.TB, w *World) {
	t.Helper()
	mustRemoveAll(t, w.Shared)
	if err := os.Mkdir(w.Shared, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustRemoveAll(t testing.TB, p string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
}

// wipeContents removes everything in dir, dotfiles included, as an admin
// recovering from corruption does.
func wipeContents(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		mustRemoveAll(t, filepath.Join(dir, e.Name()))
	}
}

// NewVolume replaces the shared registry with a new empty directory, mounted
// where the old one was in every home (a cache volume replaced).
func (w *World) NewVolume(t testing.TB, homes []string) {
	t.Helper()
	w.volumes++
	w.Shared = filepath.Join(w.Root, fmt.Sprintf("shared-registry-%d", w.volumes))
	if err := os.Mkdir(w.Shared, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range homes {
		if err := loopback.SetShared(h, w.Shared); err != nil {
			t.Fatal(err)
		}
	}
}

// After each event, plain cargo (no shim on PATH) and the shim pass in homes
// the shim has used, and the homes' links still name the registry root.
func TestHomesOutliveTheirRegistry(t *testing.T) {
	for _, ev := range registryEvents {
		t.Run(ev.name, func(t *testing.T) {
			w := NewWorld(t)
			w.Lock()
			homes := []string{w.Home(), w.Home()}
			for _, h := range homes {
				w.MustCargo(h, true, "build")
			}
			ev.do(t, w, homes)
			w.MustCargo(homes[0], false, "build")
			ev.do(t, w, homes)
			w.MustCargo(homes[1], true, "build")
			ev.do(t, w, homes)
			w.MustCargo(homes[0], true, "build")
			w.MustCargo(homes[1], false, "build")
			for _, h := range homes {
				if got := w.RunApp(h); got != wantApp {
					t.Errorf("%s: app printed %q", h, got)
				}
				for _, n := range sharedLockNames {
					if target, err := os.Readlink(filepath.Join(h, n[0])); err != nil || target != filepath.Join(h, "registry", n[1]) {
						t.Errorf("%s/%s -> %q (%v), want a link into the registry root", h, n[0], target, err)
					}
				}
			}
		})
	}
}

// Homes an earlier version of the shim linked into registry/.cargo-shim/cargo
// break plain cargo after a wipe (the bug); the next run through the shim
// heals them.
func TestHomesOfAnEarlierVersionAreHealed(t *testing.T) {
	w := NewWorld(t)
	w.Lock()
	home := w.Home()
	w.MustCargo(home, true, "build")
	for _, n := range sharedLockNames {
		old := filepath.Join(home, "registry", ".cargo-shim", "cargo", n[0])
		os.Remove(filepath.Join(home, n[0]))
		if err := os.Symlink(old, filepath.Join(home, n[0])); err != nil {
			t.Fatal(err)
		}
	}
	wipeContents(t, w.Shared)
	if r := w.Cargo(home, false, []string{"build"}); r.Code == 0 || !strings.Contains(r.Stderr, "failed to open") {
		t.Fatalf("an old link into a wiped registry should break plain cargo (the bug this heals): %s", r)
	}
	w.MustCargo(home, true, "build")
	wipeContents(t, w.Shared)
	w.MustCargo(home, false, "build")
}

// A home whose registry is its own plain directory (a laptop) keeps cargo's
// plain lock files; an earlier version's link there becomes a plain file.
func TestUnsharedHomeKeepsPlainLockFiles(t *testing.T) {
	w := NewWorld(t)
	w.Lock()
	home := filepath.Join(w.Root, "laptop")
	writeFile(t, filepath.Join(home, "config.toml"), w.Reg.CargoConfig())
	os.MkdirAll(filepath.Join(home, "registry", ".cargo-shim", "cargo"), 0o755)
	os.Symlink(filepath.Join(home, "registry", ".cargo-shim", "cargo", ".package-cache"), filepath.Join(home, ".package-cache"))
	w.MustCargo(home, true, "build")
	for _, n := range sharedLockNames {
		if fi, err := os.Lstat(filepath.Join(home, n[0])); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not cargo's plain file: %v %v", n[0], fi, err)
		}
		if _, err := os.Lstat(filepath.Join(home, "registry", n[1])); err == nil {
			t.Errorf("%s was made in an unshared registry", n[1])
		}
	}
	// A repair waits for this home's own cargo on its own lock file, and
	// leaves that file as cargo made it.
	before, _ := os.Stat(filepath.Join(home, ".package-cache"))
	src, _ := filepath.Glob(filepath.Join(home, "registry", "src", "127.0.0.1-*"))
	if len(src) != 1 {
		t.Fatalf("regdirs: %v", src)
	}
	rm(t, filepath.Join(src[0], "flat-1.0.0", "lib.rs"))
	if r := w.MustCargo(home, true, "build"); !strings.Contains(r.Stderr, "Repairing flat v1.0.0") {
		t.Fatalf("no repair: %s", r)
	}
	if after, _ := os.Stat(filepath.Join(home, ".package-cache")); after.Mode() != before.Mode() {
		t.Errorf("the home's lock file changed mode: %v -> %v", before.Mode(), after.Mode())
	}
	if _, err := os.Lstat(filepath.Join(home, "registry", sharedLockNames[0][1])); err == nil {
		t.Errorf("a repair made %s in an unshared registry", sharedLockNames[0][1])
	}
	wipeContents(t, filepath.Join(home, "registry"))
	w.MustCargo(home, false, "build")
	if got := w.RunApp(home); got != wantApp {
		t.Fatalf("app printed %q", got)
	}
}

// cargo-shim uninstall gives a home cargo's plain files back, leaves links it
// did not make, waits for nobody (a held lock is reported, exit 1), and plain
// cargo then passes even with the registry wiped.
func TestUninstallRestoresPlainLockFiles(t *testing.T) {
	w := NewWorld(t)
	w.Lock()
	home, foreign := w.Home(), w.Home()
	w.MustCargo(home, true, "build")
	w.MustCargo(foreign, true, "build")
	os.Remove(filepath.Join(foreign, ".package-cache-mutate"))
	os.Symlink(filepath.Join(w.Root, "users-own-lock"), filepath.Join(foreign, ".package-cache-mutate"))

	if r := w.AdminIn(home, "uninstall", "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "Would restore") {
		t.Fatalf("dry run: %s", r)
	}
	if _, err := os.Readlink(filepath.Join(home, ".package-cache")); err != nil {
		t.Fatalf("a dry run changed the home: %v", err)
	}
	held, err := lockfile.Try(filepath.Join(w.Shared, sharedLockNames[0][1]), lockfile.Shared)
	if err != nil {
		t.Fatal(err)
	}
	r := w.AdminIn(home, "uninstall", "--json")
	rep := decode[admin.UninstallReport](t, r)
	if r.Code != 1 || rep.Files[0].Action != "busy" || rep.Files[1].Action != "restored" {
		t.Fatalf("uninstall while a cargo holds the lock: want busy then restored, exit 1: %s", r)
	}
	held.Release()
	if r := w.AdminIn(foreign, "uninstall", "--cargo-home", home, "--cargo-home", foreign); r.Code != 1 || !strings.Contains(r.Stdout, "not a link cargo-shim made") {
		t.Fatalf("uninstall must leave a foreign link and say so: %s", r)
	}
	for _, f := range []string{filepath.Join(home, ".package-cache"), filepath.Join(home, ".package-cache-mutate"), filepath.Join(foreign, ".package-cache")} {
		if fi, err := os.Lstat(f); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a plain file after uninstall: %v", f, err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(foreign, ".package-cache-mutate")); target != filepath.Join(w.Root, "users-own-lock") {
		t.Errorf("a foreign link was changed: %q", target)
	}
	if r := w.AdminIn(home, "uninstall"); r.Code != 0 {
		t.Fatalf("uninstall of an uninstalled home: %s", r)
	}
	wipeContents(t, w.Shared)
	w.MustCargo(home, false, "build")
}

// AdminIn runs cargo-shim as a runner with home as its CARGO_HOME (its
// registry mounted) would.
func (w *World) AdminIn(home string, args ...string) Result {
	w.t.Helper()
	return loopback.Start(filepath.Join(binDir, "cargo-shim"), w.Work, w.Env(home, true), args).Wait()
}
