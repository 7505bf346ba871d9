package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// groupInstall is a group-shared registry of the tool, installed by root
// and by a member uid.
type groupInstall struct {
	*mixed
	tool *ToolWorld
}

func newGroupInstall(t *testing.T) *groupInstall {
	t.Helper()
	group, gid := sharedGroup(t)
	m := newMember(t, gid, true)
	memberToolchain(t)
	tw := newToolWorldOf(t, packagedFixture(), true)
	reachable(tw.Root)
	x := &mixed{World: tw.World, group: group, gid: gid, m: m}
	x.initGroup(tw.Shared)
	return &groupInstall{mixed: x, tool: tw}
}

// install is one CI job's `cargo install` of the tool in form f, as the
// member or as root, on registry reg: a fresh home, install root and
// checkout of its own (an install root or target dir already holding the
// tool would let cargo skip reading the registry).
func (g *groupInstall) install(asMember bool, f installForm, reg string, viaShim bool) (r Result, ok bool, why string) {
	g.t.Helper()
	var home string
	if asMember {
		home = g.memberHome(g.m, reg)
	} else {
		home = g.rootHomeOn(reg)
	}
	dir, args, root := g.tool.InstallCommand(f, home)
	if f.inCheckout {
		dir = filepath.Join(home, "checkout")
		if err := loopback.CopyDir(g.tool.ToolSrc, dir); err != nil {
			g.t.Fatal(err)
		}
	}
	if asMember {
		g.chownTree(home, g.m)
		r = g.CargoAs(g.m, dir, home, viaShim, args)
	} else {
		r = g.Start(dir, home, viaShim, args).Wait()
	}
	if r.Code != 0 {
		return r, false, fmt.Sprintf("exit %d: %s", r.Code, cargoError(r.Stderr))
	}
	out, err := exec.Command(filepath.Join(root, "bin", loopback.ToolName)).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != loopback.WantTool {
		return r, false, fmt.Sprintf("installed tool printed %q (%v), want %q", got, err, loopback.WantTool)
	}
	return r, true, ""
}

// groupInstallStep: damage (none for the cold start) in the extraction of
// crate, then two runners install, the first in form first.
type groupInstallStep struct {
	damage        *installDamage
	crate         string
	first, second installForm
	// noTrustedSum: the crate's checksum comes only from the index cache,
	// which every group member can write (a group-shared registry's
	// directories are group-writable). By the trust rule (docs/trust.md)
	// the shim then reports the damage, naming the file, and leaves the
	// extraction; cargo fails on it as plain cargo does, and the operator
	// removes the extraction, as the warning says.
	noTrustedSum bool
}

func installDamageNamed(name string) *installDamage {
	for i := range installDamages {
		if installDamages[i].name == name {
			return &installDamages[i]
		}
	}
	panic("no install damage " + name)
}

// groupInstallSteps: a cold start, then a dependency's extraction damaged
// and the tool's own; between them both forms run as both uids.
func groupInstallSteps() []groupInstallStep {
	reg, path := installForms[0], installForms[1]
	return []groupInstallStep{
		{first: reg, second: path},
		{damage: installDamageNamed("flat-lib-removed"), crate: "flat-1.0.0", first: path, second: reg},
		{damage: installDamageNamed("tool-extraction-damaged"), crate: toolDir, first: reg, second: path, noTrustedSum: true},
	}
}

// run is the sequence on registry reg (the world's own, or another on
// which it damages through a copy of the world): in the cold start
// memberFirst decides who runs first; after damage the uid that did not
// extract the damaged crate runs first, so that it repairs what the other
// uid made. It returns the runs and the failed ones, reporting failures
// through the shim as errors.
func (g *groupInstall) run(reg string, viaShim, memberFirst bool) (runs, failed int) {
	t := g.t
	dw := *g.tool
	world := *g.World
	world.Shared = reg
	dw.World = &world
	for _, s := range groupInstallSteps() {
		firstIsMember := memberFirst
		if s.damage != nil {
			dw.Regdir = g.Regdir
			firstIsMember = ownerUid(filepath.Join(reg, "src", g.Regdir, s.crate)) == 0
			s.damage.damage(t, &dw)
		}
		for k, asMember := range []bool{firstIsMember, !firstIsMember} {
			f := s.first
			if k == 1 {
				f = s.second
			}
			runs++
			r, ok, why := g.install(asMember, f, reg, viaShim)
			name := fmt.Sprintf("%s: %s form as %s", stepName(s), f.name, uidName(asMember))
			switch {
			case s.noTrustedSum && viaShim && k == 0:
				failed++
				want := regexp.MustCompile(`eval-tool v1\.0\.0: \S+/src/main\.rs: differs from its tarball, whose checksum nothing trusted names \(src/main\.rs missing\); left as it is`)
				if ok || !want.MatchString(r.Stderr) {
					t.Errorf("%s: want the damage reported and left (no trusted checksum), got ok=%v:\n%s", name, ok, r.Stderr)
				}
				os.RemoveAll(filepath.Join(reg, "src", g.Regdir, s.crate)) // the operator's fix
				if _, ok, why := g.install(asMember, f, reg, viaShim); !ok {
					t.Errorf("%s, once the operator removed the extraction: %s", name, why)
				}
			case !ok && viaShim:
				failed++
				t.Errorf("%s through the shim: %s\n%s", name, why, r)
			case !ok:
				failed++
				t.Logf("%s, plain cargo: %s", name, why)
			case viaShim && k == 0 && s.damage != nil && !regexp.MustCompile(s.damage.wantShim).MatchString(r.Stderr):
				t.Errorf("%s: stderr does not match %q:\n%s", name, s.damage.wantShim, r.Stderr)
			}
		}
		if s.damage == nil && g.Regdir == "" {
			g.Regdir = g.findRegdir()
		}
	}
	return runs, failed
}

func stepName(s groupInstallStep) string {
	if s.damage == nil {
		return "cold"
	}
	return s.damage.name
}

func uidName(member bool) string {
	if member {
		return "the member"
	}
	return "root"
}

// ownerUid is the owner of p, or -1 when it is gone.
func ownerUid(p string) int {
	fi, err := os.Lstat(p)
	if err != nil {
		return -1
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// TestInstallGroupShared: `cargo install` by root and by a non-root member
// on a group-shared registry, both forms, both orders, cold and after a
// dependency's and the tool's own extraction were damaged in what the other
// uid extracted. Through the shim: 0 failures, the tool runs, and the group
// can still write everything. Plain cargo runs the root-first sequence once
// on a registry of its own, for the record.
func TestInstallGroupShared(t *testing.T) {
	for _, memberFirst := range []bool{false, true} {
		name := "root-first"
		if memberFirst {
			name = "member-first"
		}
		t.Run(name, func(t *testing.T) {
			g := newGroupInstall(t)
			runs, failed := g.run(g.Shared, true, memberFirst)
			g.tool.Regdir = g.Regdir
			g.tool.AssertToolHealthy()
			g.assertGroupWritable()
			if memberFirst {
				t.Logf("%s through the shim: %d of %d installs failed", name, failed, runs)
				return
			}
			plainReg := filepath.Join(g.Root, "plain-registry")
			os.MkdirAll(plainReg, 0o755)
			g.initGroup(plainReg)
			pruns, pfailed := g.run(plainReg, false, memberFirst)
			t.Logf("%s on a group-shared registry: through the shim %d of %d installs failed; plain cargo %d of %d",
				name, failed, runs, pfailed, pruns)
		})
	}
}

// cargoError is cargo's first error line (a warning may mention an error).
func cargoError(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "error") {
			return l
		}
	}
	return ""
}
