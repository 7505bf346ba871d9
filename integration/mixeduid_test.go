package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// Root CI containers and a non-root host runner share one registry. These
// tests run both as real uids: root, and a user made for the test whose
// supplementary group shares the registry (`cargo-shim init --group`).

// packagedFixture is the fixture built as `cargo package` builds tarballs,
// without directory entries: cargo then makes every directory with the
// umask (TestFactCargoCreatesWithTheUmask).
func packagedFixture() []loopback.CrateSpec {
	out := make([]loopback.CrateSpec, len(fixtureCrates))
	for i, c := range fixtureCrates {
		c.NoDirEntries = true
		out[i] = c
	}
	return out
}

// mixed is a world shared by root and a member uid.
type mixed struct {
	*World
	group string
	gid   int
	m     *member
}

func newMixed(t *testing.T, initGroup bool) *mixed {
	t.Helper()
	return newMixedOf(t, initGroup, packagedFixture())
}

func newMixedOf(t *testing.T, initGroup bool, crates []loopback.CrateSpec) *mixed {
	t.Helper()
	group, gid := sharedGroup(t)
	m := newMember(t, gid, true)
	memberToolchain(t)
	w := newWorldOf(t, crates)
	reachable(w.Root)
	x := &mixed{World: w, group: group, gid: gid, m: m}
	if initGroup {
		x.initGroup(w.Shared)
	}
	return x
}

// rootBuilds is a root container's cold start through the shim, then a
// second run, which verifies and records what cargo extracted. It returns
// root's CARGO_HOME.
func (x *mixed) rootBuilds() string {
	x.t.Helper()
	home := x.Home()
	x.MustCargo(home, true, "build")
	x.Regdir = x.findRegdir()
	x.MustCargo(home, true, "build")
	return home
}

// assertGroupWritable: every run left what it made writable by the group
// where a member needs it (status audits the whole registry).
func (x *mixed) assertGroupWritable() {
	x.t.Helper()
	st := decode[admin.StatusReport](x.t, x.Admin("status", "--json"))
	if !st.GroupStatus.Shared || len(st.Unwritable) > 0 {
		x.t.Errorf("after the runs the group cannot write (shared: %v, %s):\n%s", st.GroupStatus.Shared, st.Note, strings.Join(st.Unwritable, "\n"))
	}
}

func (x *mixed) initGroup(reg string) {
	x.t.Helper()
	if r := x.Admin("init", "--group", x.group, "--registry", reg); r.Code != 0 {
		x.t.Fatalf("cargo-shim init: %s", r)
	}
}

// setPlainRegistry points a root home at reg.
func (x *mixed) rootHomeOn(reg string) string {
	x.t.Helper()
	h := x.Home()
	if err := loopback.SetShared(h, reg); err != nil {
		x.t.Fatal(err)
	}
	return h
}

// Every damage kind, left in what root's cargo made, repaired by the
// non-root runner coming first; then root runs too. The same sequence with
// plain cargo on a registry prepared the same way is the baseline.
func TestMixedUidsMemberRepairsRootsDamage(t *testing.T) {
	x := newMixed(t, true)
	rootHome := x.rootBuilds()
	mHome, mWork := x.memberHome(x.m, x.Shared), x.memberWorkspace(x.m)

	plainReg := filepath.Join(x.Root, "plain-registry")
	os.MkdirAll(plainReg, 0o755)
	x.initGroup(plainReg)
	plainRoot := x.rootHomeOn(plainReg)
	x.MustCargo(plainRoot, false, "build")
	pristine := filepath.Join(x.Root, "plain-pristine")
	if err := loopback.CopyDir(plainReg, pristine); err != nil {
		t.Fatal(err)
	}
	pHome := x.memberHome(x.m, plainReg)

	var runs, shimFailed, plainFailed, plainRootFailed int
	for _, tc := range damageCases {
		if tc.name == "tarball-removed-offline" {
			continue // nothing to repair from: every run fails, by design
		}
		args := []string{"build"}
		if tc.offline {
			args = append(args, "--offline")
		}
		runs++
		tc.damage(t, x.World)
		r := x.CargoAs(x.m, mWork, mHome, true, args, tc.env...)
		if r.Code != 0 {
			shimFailed++
			t.Errorf("%s: the member's run through the shim failed: %s", tc.name, r)
		} else if tc.wantShim != `^$` && !regexp.MustCompile(`(?m)`+tc.wantShim).MatchString(r.Stderr) {
			t.Errorf("%s: the member's stderr does not match %q:\n%s", tc.name, tc.wantShim, r.Stderr)
		}
		if tc.tarballStays {
			// Reported and kept: put the registry's own bytes back.
			rm(t, x.Tarball("flat-1.0.0"))
			rm(t, x.Extraction("flat-1.0.0"))
		} else {
			x.AssertHealthy()
		}
		if r := x.Cargo(rootHome, true, args); r.Code != 0 {
			shimFailed++
			t.Errorf("%s: root's run after the member's failed: %s", tc.name, r)
		}

		// Baseline: plain cargo, same damage on the same kind of registry.
		rm(t, plainReg)
		if err := loopback.CopyDir(pristine, plainReg); err != nil {
			t.Fatal(err)
		}
		pw := *x.World
		pw.Shared = plainReg
		tc.damage(t, &pw)
		if pr := x.CargoAs(x.m, mWork, pHome, false, args); pr.Code != 0 {
			plainFailed++
			t.Logf("%s: plain cargo as the member failed: %s", tc.name, firstLine(pr.Stderr, "error"))
		}
		if pr := x.Cargo(plainRoot, false, args); pr.Code != 0 {
			plainRootFailed++
		}
	}
	x.assertGroupWritable()
	t.Logf("damage then the member first, %d kinds: through the shim %d of %d runs failed; plain cargo: member %d of %d, root after it %d of %d",
		runs, shimFailed, 2*runs, plainFailed, runs, plainRootFailed, runs)
}

// Cold starts on a group-shared registry, the two uids in both orders: the
// first runner's job uses one crate and makes the registry's directories,
// the second's uses all of them. Through the shim both pass. Plain cargo
// (umask 0022) leaves root's directories unwritable for the member.
func TestMixedUidsColdStart(t *testing.T) {
	for _, memberFirst := range []bool{false, true} {
		name := "root-first"
		if memberFirst {
			name = "member-first"
		}
		t.Run(name, func(t *testing.T) {
			x := newMixed(t, true)
			small := filepath.Join(x.Root, "small")
			if err := loopback.WriteWorkspace(small, packagedFixture()[:1], "fn main() { println!(\"{}\", flat::flat()); }\n"); err != nil {
				t.Fatal(err)
			}
			x.chownTree(small, x.m)
			mWork := x.memberWorkspace(x.m)
			plainReg := filepath.Join(x.Root, "plain-registry")
			os.MkdirAll(plainReg, 0o755)
			x.initGroup(plainReg)
			homes := map[bool]string{true: x.Home(), false: x.rootHomeOn(plainReg)}
			mHomes := map[bool]string{true: x.memberHome(x.m, x.Shared), false: x.memberHome(x.m, plainReg)}
			results := map[bool][]Result{}
			for _, viaShim := range []bool{true, false} {
				root := func(dir string) Result {
					return x.Start(dir, homes[viaShim], viaShim, []string{"build"}).Wait()
				}
				mem := func(dir string) Result {
					return x.CargoAs(x.m, dir, mHomes[viaShim], viaShim, []string{"build"})
				}
				if memberFirst {
					results[viaShim] = []Result{mem(small), root(x.Work)}
				} else {
					results[viaShim] = []Result{root(small), mem(mWork)}
				}
				rm(t, filepath.Join(small, "target"))
				rm(t, filepath.Join(small, "Cargo.lock"))
			}
			for k, r := range results[true] {
				if r.Code != 0 {
					t.Errorf("run %d through the shim failed: %s", k+1, r)
				}
			}
			x.Regdir = x.findRegdir()
			x.AssertHealthy()
			x.assertGroupWritable()
			plain := results[false]
			t.Logf("plain cargo: first run exit %d, second exit %d %s", plain[0].Code, plain[1].Code, firstLine(plain[1].Stderr, "error"))
			if !memberFirst && (plain[1].Code == 0 || !strings.Contains(plain[1].Stderr, "Permission denied")) {
				t.Errorf("plain cargo as the member after root's cold start passed: the facts changed? %s", plain[1])
			}
		})
	}
}

// The admin command as the member: repair and gc of what root made.
func TestMixedUidsAdminAsMember(t *testing.T) {
	x := newMixed(t, true)
	rootHome := x.rootBuilds()
	// Root repairs first: the trash is root's, and so is what is in it.
	rm(t, filepath.Join(x.Extraction("namedbuild-0.3.1"), "build.rs"))
	x.MustCargo(rootHome, true, "build")
	mHome := x.memberHome(x.m, x.Shared)
	rm(t, filepath.Join(x.Extraction("flat-1.0.0"), "lib.rs"))
	rm(t, filepath.Join(x.Extraction("deep-mods-2.1.0"), "src", "outer", "inner", "leaf.rs"))
	if r := x.AdminAs(x.m, mHome, "repair"); r.Code != 0 || !strings.Contains(r.Stderr+r.Stdout, "deep-mods") {
		t.Fatalf("repair as the member: %s", r)
	}
	x.AssertHealthy()
	x.assertGroupWritable() // what the member's repair made, too
	r := x.AdminAs(x.m, mHome, "gc", "--max-age", "0s", "--crate-max-age", "0s")
	if r.Code != 0 {
		t.Fatalf("gc as the member: %s", r)
	}
	for _, dir := range []string{filepath.Join(x.Shared, "src", x.Regdir), filepath.Join(x.Shared, "cache", x.Regdir), filepath.Join(x.Shared, ".cargo-shim", "trash")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			t.Errorf("gc as the member left %s", filepath.Join(dir, e.Name()))
		}
	}
	// And the registry still serves both.
	if r := x.CargoAs(x.m, x.memberWorkspace(x.m), mHome, true, []string{"build"}); r.Code != 0 {
		t.Fatalf("member build after gc: %s", r)
	}
	x.MustCargo(rootHome, true, "build")
}

// Tarballs with directory entries (the fixture's; `cargo package` writes
// none): cargo chmods those directories to their tar mode, dropping group
// write and setgid. Root's next run through the shim, the first to verify
// them, gives them back, and then the member can gc what root's cargo made.
func TestMixedUidsTarDirectoryEntries(t *testing.T) {
	x := newMixedOf(t, true, fixtureCrates)
	x.rootBuilds()
	x.assertGroupWritable()
	mHome := x.memberHome(x.m, x.Shared)
	if r := x.AdminAs(x.m, mHome, "gc", "--max-age", "0s", "--crate-max-age", "0s"); r.Code != 0 {
		t.Fatalf("gc as the member: %s", r)
	}
	if ents, _ := os.ReadDir(filepath.Join(x.Shared, "src", x.Regdir)); len(ents) > 0 {
		t.Fatalf("gc as the member left %d entries, first %s", len(ents), ents[0].Name())
	}
}

// Without init, a member that cannot repair what root made says so once and
// names the fix; status says the registry is not group-shared and lists
// what the group cannot write. After init it is all clear.
func TestMixedUidsWithoutInit(t *testing.T) {
	x := newMixed(t, false)
	x.rootBuilds()
	rm(t, filepath.Join(x.Extraction("flat-1.0.0"), "lib.rs"))
	mHome := x.memberHome(x.m, x.Shared)
	r := x.CargoAs(x.m, x.memberWorkspace(x.m), mHome, true, []string{"build"})
	if n := strings.Count(r.Stderr, "warning: cargo-shim:"); n != 1 || !strings.Contains(r.Stderr, "cargo-shim init --group GROUP --registry") {
		t.Fatalf("want one warning naming `cargo-shim init --group`: %s", r)
	}
	// Every path of a registry that is not group-shared is "not writable
	// by the group": the list is shown when asked for (-v), not by default.
	st := x.Admin("status", "-v")
	if !strings.Contains(st.Stdout, "group-shared:       false") || !strings.Contains(st.Stdout, filepath.Join(x.Shared, "src")+": directory not writable by the group") {
		t.Fatalf("status -v of a registry that is not group-shared: %s", st)
	}
	if st := x.Admin("status"); !strings.Contains(st.Stdout, "group-shared:       false") || strings.Contains(st.Stdout, "not writable by the group") {
		t.Fatalf("status of a registry that is not group-shared lists paths without -v: %s", st)
	}
	x.initGroup(x.Shared)
	st = x.Admin("status")
	if !strings.Contains(st.Stdout, "group-shared:       true") || !strings.Contains(st.Stdout, "group can write:    everything") {
		t.Fatalf("status after init: %s", st)
	}
	if r := x.CargoAs(x.m, x.memberWorkspace(x.m), mHome, true, []string{"build"}); r.Code != 0 || !strings.Contains(r.Stderr, "Repairing flat v1.0.0") {
		t.Fatalf("member after init: %s", r)
	}

	// A uid outside the group gets what it got before: fail-open, one
	// warning naming the group to add it to.
	outsider := newMember(t, x.gid, false)
	rm(t, filepath.Join(x.Extraction("flat-1.0.0"), "lib.rs"))
	oHome := x.memberHome(outsider, x.Shared)
	r = x.CargoAs(outsider, x.memberWorkspace(outsider), oHome, true, []string{"build"})
	if n := strings.Count(r.Stderr, "warning: cargo-shim:"); n != 1 || !strings.Contains(r.Stderr, fmt.Sprintf("--group-add %d", x.gid)) {
		t.Fatalf("a uid outside the group: want one warning naming --group-add: %s", r)
	}
}

// init: refuses a caller that is neither root nor the owner, never follows
// a symlink planted in the registry, is idempotent, and runs beside builds.
func TestInitGroup(t *testing.T) {
	x := newMixed(t, false)
	x.Warm()
	outside := filepath.Join(x.Root, "outside")
	writeFile(t, filepath.Join(outside, "secret"), "root's")
	os.Chmod(filepath.Join(outside, "secret"), 0o600)
	os.Chmod(outside, 0o700)
	regdir := filepath.Join(x.Shared, "src", x.Regdir)
	for name, target := range map[string]string{"evil-file": filepath.Join(outside, "secret"), "evil-dir": outside} {
		if err := os.Symlink(target, filepath.Join(regdir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(x.Shared, "cache", x.Regdir, "evil-0.1.0.crate")); err != nil {
		t.Fatal(err)
	}

	mHome := x.memberHome(x.m, x.Shared)
	if r := x.AdminAs(x.m, mHome, "init", "--group", x.group); r.Code != 2 || !strings.Contains(r.Stderr, "run it as root") {
		t.Fatalf("init as a uid that is neither root nor the owner: %s", r)
	}
	if r := x.Admin("init", "--group", "csi10-no-such-group"); r.Code != 2 || !strings.Contains(r.Stderr, "no group") {
		t.Fatalf("init with an unknown group: %s", r)
	}

	build := x.Start(x.Work, x.Home(), true, []string{"build"})
	first := x.Admin("init", "--group", x.group)
	if r := build.Wait(); r.Code != 0 {
		t.Fatalf("a build beside init: %s", r)
	}
	if first.Code != 0 || strings.Contains(first.Stdout, " 0 changed") {
		t.Fatalf("init: %s", first)
	}
	for _, p := range []string{outside, filepath.Join(outside, "secret")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != 0 || fi.Mode().Perm()&0o070 != 0 {
			t.Errorf("init followed a symlink to %s: now %v group %d", p, fi.Mode(), gid)
		}
	}
	// What the build made meanwhile may have needed a second pass; the
	// third changes nothing.
	x.Admin("init", "--group", x.group)
	if r := x.Admin("init", "--group", strconv.Itoa(x.gid)); r.Code != 0 || !strings.Contains(r.Stdout, " 0 changed") {
		t.Fatalf("init again: %s", r)
	}
	x.assertGroupWritable()
}

// The simplest setup: the host runner's own primary gid shares the
// registry (no supplementary group, nothing added to root's containers).
func TestMixedUidsRunnersOwnGroup(t *testing.T) {
	x := newMixed(t, false)
	x.m.Groups = nil
	if r := x.Admin("init", "--group", strconv.Itoa(x.m.Gid)); r.Code != 0 {
		t.Fatalf("init with the runner's gid: %s", r)
	}
	x.gid = x.m.Gid
	x.rootBuilds()
	rm(t, filepath.Join(x.Extraction("deep-mods-2.1.0"), "src"))
	r := x.CargoAs(x.m, x.memberWorkspace(x.m), x.memberHome(x.m, x.Shared), true, []string{"build"})
	if r.Code != 0 || !strings.Contains(r.Stderr, "Repairing deep-mods v2.1.0") {
		t.Fatalf("the runner repairing root's extraction: %s", r)
	}
	x.AssertHealthy()
	x.assertGroupWritable()
}
