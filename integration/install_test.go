package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// toolCrates are the tool and every crate of its packaged Cargo.lock.
func toolCrates() []loopback.CrateSpec {
	out := append(append([]loopback.CrateSpec{}, fixtureCrates...), loopback.ToolLeaves()...)
	return append(out, loopback.ToolSpec())
}

// ToolWorld is a World whose registry also serves the binary crate
// eval-tool, published with its Cargo.lock as `cargo package` does; ToolSrc
// is a checkout of its sources with that Cargo.lock.
type ToolWorld struct {
	*World
	ToolSrc  string
	installs int
}

func NewToolWorld(t *testing.T) *ToolWorld {
	t.Helper()
	return newToolWorldOf(t, fixtureCrates, false)
}

// newToolWorldOf is NewToolWorld on fixture; packaged builds the leaves and
// the tool as `cargo package` does, without directory entries.
func newToolWorldOf(t *testing.T, fixture []loopback.CrateSpec, packaged bool) *ToolWorld {
	t.Helper()
	w := &ToolWorld{World: newWorldOf(t, fixture), ToolSrc: filepath.Join(t.TempDir(), "eval-tool")}
	for _, c := range loopback.ToolLeaves() {
		c.NoDirEntries = packaged
		w.Checksum[c.Dir()] = w.Reg.Publish(c)
	}
	tool := loopback.ToolSpec()
	tool.NoDirEntries = packaged
	sum, err := w.Reg.PublishWithLock(tool, w.ToolSrc, func(dir string) error {
		h := filepath.Join(w.Root, "lock-home")
		writeFile(t, filepath.Join(h, "config.toml"), w.Reg.CargoConfig())
		if r := w.Start(dir, h, false, []string{"generate-lockfile"}).Wait(); r.Code != 0 {
			return fmt.Errorf("generate-lockfile: %s", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Checksum[tool.Dir()] = sum
	// Versions cargo install does not pick: older, yanked, a pre-release.
	for _, v := range []struct {
		vers   string
		yanked bool
	}{{"0.9.0", false}, {"1.1.0", true}, {"2.0.0-beta.1", false}} {
		other := loopback.ToolSpec()
		other.Version, other.Yanked, other.NoDirEntries = v.vers, v.yanked, packaged
		w.Reg.Publish(other)
	}
	return w
}

// An installForm is one way a CI job installs the tool.
type installForm struct {
	name string
	args []string
	// fromRegistry: the tool's own crate comes from the registry.
	fromRegistry bool
	// inCheckout: run in the tool's checkout (else in a directory with no
	// Cargo.lock at or above it).
	inCheckout bool
}

var installForms = []installForm{
	{name: "registry", args: []string{"install", loopback.ToolName, "--locked"}, fromRegistry: true},
	{name: "path", args: []string{"install", "--path", ".", "--locked"}, inCheckout: true},
}

// InstallCommand is a runner's `cargo install` of the tool in form f: the
// directory to run it in and its arguments, installing into a root inside
// home. The seam for group-shared registries: World.CargoAs(m, dir, home,
// true, args) runs it as a member uid. Debug builds keep the tests short;
// what cargo reads of the registry is the same.
func (w *ToolWorld) InstallCommand(f installForm, home string) (dir string, args []string, root string) {
	root = filepath.Join(home, "install-root")
	dir = w.Root
	if f.inCheckout {
		dir = w.ToolSrc
	}
	return dir, append(append([]string{}, f.args...), "--debug", "--root", root), root
}

// StartInstall starts `cargo install` of the tool as a fresh runner: a home
// and an install root of its own, on the shared registry.
func (w *ToolWorld) StartInstall(f installForm, viaShim bool, extra ...string) (p *Proc, root string) {
	home := w.Home()
	dir, args, root := w.InstallCommand(f, home)
	return w.Start(dir, home, viaShim, args, extra...), root
}

// Install runs one install to its end; ok says whether it exited 0 and the
// tool it installed prints what a right build prints.
func (w *ToolWorld) Install(f installForm, viaShim bool, extra ...string) (r Result, ok bool, why string) {
	p, root := w.StartInstall(f, viaShim, extra...)
	r = p.Wait()
	if r.Code != 0 {
		return r, false, "exit " + fmt.Sprint(r.Code)
	}
	out, err := exec.Command(filepath.Join(root, "bin", loopback.ToolName)).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != loopback.WantTool {
		return r, false, fmt.Sprintf("installed tool printed %q (%v), want %q", got, err, loopback.WantTool)
	}
	return r, true, ""
}

// AssertToolHealthy checks the tool and every crate of its lock deeply.
func (w *ToolWorld) AssertToolHealthy() { w.t.Helper(); w.assertHealthy(toolCrates()) }

func (w *ToolWorld) assertHealthy(crates []loopback.CrateSpec) {
	w.t.Helper()
	reg := store.Registry{Root: w.Shared}
	for _, c := range crates {
		i := store.Instance{Crate: store.Crate{Name: c.Name, Version: c.Version, Checksum: w.Checksum[c.Dir()]}, Regdir: w.Regdir}
		f := reg.Check(i, store.Deep, false)
		if f.Verdict != store.Healthy || f.TarballMissing || f.Mismatch != "" || f.TarballCorrupt != nil {
			w.t.Errorf("registry not healthy afterwards: %s: %s %s (tarball missing=%v corrupt=%v)",
				i, f.Verdict, f.Reason, f.TarballMissing, f.TarballCorrupt)
		}
	}
}

type installDamage struct {
	name string
	// tool: the damage is to the tool's own crate, which only the registry
	// form reads.
	tool     bool
	damage   func(t *testing.T, w *ToolWorld)
	wantShim string
}

var toolDir = loopback.ToolName + "-" + loopback.ToolVersion

var installDamages = []installDamage{
	{name: "flat-lib-removed", wantShim: `Repairing flat v1\.0\.0 \(lib\.rs missing\)`,
		damage: func(t *testing.T, w *ToolWorld) { rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")) }},
	{name: "src-dir-removed", wantShim: `Repairing deep-mods v2\.1\.0 \(src/ missing\)`,
		damage: func(t *testing.T, w *ToolWorld) { rm(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src")) }},
	{name: "build-rs-removed", wantShim: `Repairing autobuild v0\.2\.0 \(build\.rs missing\)`,
		damage: func(t *testing.T, w *ToolWorld) { rm(t, filepath.Join(w.Extraction("autobuild-0.2.0"), "build.rs")) }},
	{name: "crate-truncated-extraction-gone", wantShim: `Removing truncated tarball of leaf-03 v0\.1\.0`,
		damage: func(t *testing.T, w *ToolWorld) {
			rm(t, w.Extraction("leaf-03-0.1.0"))
			truncate(t, w.Tarball("leaf-03-0.1.0"), 60)
		}},
	{name: "tool-extraction-damaged", tool: true, wantShim: `Repairing eval-tool v1\.0\.0 \(src/main\.rs missing\)`,
		damage: func(t *testing.T, w *ToolWorld) { rm(t, filepath.Join(w.Extraction(toolDir), "src", "main.rs")) }},
	{name: "tool-tarball-truncated", tool: true, wantShim: `Removing truncated tarball of eval-tool v1\.0\.0`,
		damage: func(t *testing.T, w *ToolWorld) { truncate(t, w.Tarball(toolDir), 100) }},
	{name: "tool-tarball-truncated-extraction-gone", tool: true, wantShim: `Removing truncated tarball of eval-tool v1\.0\.0`,
		damage: func(t *testing.T, w *ToolWorld) {
			rm(t, w.Extraction(toolDir))
			truncate(t, w.Tarball(toolDir), 100)
		}},
}

// TestInstallDamage: every damage kind, both install forms. Plain cargo
// runs first on the damage (its failures are logged, for the README), then
// the same damage again through the shim, which must pass.
func TestInstallDamage(t *testing.T) {
	w := NewToolWorld(t)
	if _, ok, why := w.Install(installForms[0], false); !ok {
		t.Fatalf("warming the registry with plain cargo install: %s", why)
	}
	w.Regdir = w.findRegdir()
	plainFailed, shimFailed, runs := 0, 0, 0
	for _, d := range installDamages {
		for _, f := range installForms {
			if d.tool && !f.fromRegistry {
				continue
			}
			t.Run(d.name+"/"+f.name, func(t *testing.T) {
				runs++
				d.damage(t, w)
				if _, ok, why := w.Install(f, false); !ok {
					plainFailed++
					t.Logf("plain cargo: %s", why)
				}
				d.damage(t, w)
				r, ok, why := w.Install(f, true)
				if !ok {
					shimFailed++
					t.Fatalf("through the shim: %s\n%s", why, r)
				}
				if !regexp.MustCompile(d.wantShim).MatchString(r.Stderr) {
					t.Errorf("shim stderr does not match %q:\n%s", d.wantShim, r.Stderr)
				}
				w.AssertToolHealthy()
			})
		}
	}
	t.Logf("cargo install on a damaged registry: plain cargo failed %d of %d runs, the shim %d", plainFailed, runs, shimFailed)
}

// TestInstallPlan: what the shim plans for each form, from its debug log.
func TestInstallPlan(t *testing.T) {
	w := NewToolWorld(t)
	if _, ok, why := w.Install(installForms[0], false); !ok {
		t.Fatalf("warming the registry with plain cargo install: %s", why)
	}
	n := len(toolCrates())
	wants := map[string]string{
		"registry": fmt.Sprintf(`cargo install eval-tool: eval-tool v1\.0\.0 \(127\.0\.0\.1-[0-9a-f]+\), %d crates from its packaged Cargo\.lock`, n-1),
		"path":     fmt.Sprintf(`planned %d crates from %s`, n-1, regexp.QuoteMeta(filepath.Join(w.ToolSrc, "Cargo.lock"))),
	}
	wants["path-elsewhere"] = wants["path"]
	elsewhere := installForm{name: "path-elsewhere", args: []string{"install", "--path", w.ToolSrc, "--locked"}}
	// An explicit older version, published without a Cargo.lock.
	wants["explicit"] = `only eval-tool v0\.9\.0 itself is planned`
	explicit := installForm{name: "explicit", args: []string{"install", "eval-tool@0.9.0"}, fromRegistry: true}
	for _, f := range append(installForms, elsewhere, explicit) {
		r, ok, why := w.Install(f, true, "CARGO_SHIM_LOG=debug")
		if !ok {
			t.Fatalf("%s: %s\n%s", f.name, why, r)
		}
		if !regexp.MustCompile(wants[f.name]).MatchString(r.Stderr) {
			t.Errorf("%s: debug log does not match %q:\n%s", f.name, wants[f.name], r.Stderr)
		}
	}
	// Planned from the registry: the tool itself too.
	r, _, _ := w.Install(installForms[0], true, "CARGO_SHIM_LOG=debug")
	if !strings.Contains(r.Stderr, fmt.Sprintf("planned %d crates", n)) {
		t.Errorf("the tool itself is not planned:\n%s", r.Stderr)
	}
}

// TestInstallColdManyRunners: K runners (own homes and install roots, one
// shared registry) install the tool at once from a cold registry, half of
// them from the registry and half from a checkout; plain cargo does the
// same first, in a registry of its own, for the record.
func TestInstallColdManyRunners(t *testing.T) {
	k := runnerCount()
	run := func(viaShim bool) (*ToolWorld, int) {
		w := NewToolWorld(t)
		procs := make([]*Proc, k)
		roots := make([]string, k)
		for n := range procs {
			procs[n], roots[n] = w.StartInstall(installForms[n%2], viaShim)
		}
		failed := 0
		for n, p := range procs {
			r := p.Wait()
			out, err := exec.Command(filepath.Join(roots[n], "bin", loopback.ToolName)).Output()
			if r.Code != 0 || err != nil || strings.TrimSpace(string(out)) != loopback.WantTool {
				failed++
				if viaShim {
					t.Errorf("runner %d of %d (%s) failed through the shim: %s", n, k, installForms[n%2].name, r)
				}
			}
		}
		return w, failed
	}
	_, plainFailed := run(false)
	w, shimFailed := run(true)
	w.Regdir = w.findRegdir()
	most := 0
	for _, c := range toolCrates() {
		got := w.Reg.Downloads()[c.Dir()]
		most = max(most, got)
		if got != 1 {
			t.Errorf("%s downloaded %d times by %d cold runners, want exactly 1", c.Dir(), got, k)
		}
	}
	w.AssertToolHealthy()
	t.Logf("%d cold runners installing at once: plain cargo %d failed, the shim %d; at most %d download per crate through the shim", k, plainFailed, shimFailed, most)
}

// TestPackageVerifyIsPlanned: `cargo package` verifies by building the
// packaged crate with the workspace's Cargo.lock; the shim plans that lock.
func TestPackageVerifyIsPlanned(t *testing.T) {
	w := NewToolWorld(t)
	if r := w.Start(w.ToolSrc, w.Home(), false, []string{"fetch"}).Wait(); r.Code != 0 {
		t.Fatalf("warming the registry: %s", r)
	}
	w.Regdir = w.findRegdir()
	damage := func() { rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")) }
	damage()
	if r := w.Start(w.ToolSrc, w.Home(), false, []string{"package"}).Wait(); r.Code == 0 {
		t.Logf("plain cargo package passed on a damaged registry")
	} else {
		t.Logf("plain cargo package failed: %s", firstLine(r.Stderr, "error"))
	}
	damage()
	r := w.Start(w.ToolSrc, w.Home(), true, []string{"package"}).Wait()
	if r.Code != 0 {
		t.Fatalf("cargo package through the shim: %s", r)
	}
	if !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs missing)") {
		t.Errorf("no repair in:\n%s", r.Stderr)
	}
	crates := toolCrates()
	w.assertHealthy(crates[:len(crates)-1])
}

// TestInstallToolTarballUnreadable: a tool whose tarball cannot be read is
// planned alone (its dependencies are unknown) and nothing of that run is
// remembered; once cargo has downloaded it again, the next run plans its
// dependencies; from then on they are planned even when the tarball breaks
// again, from what was read while it was whole.
func TestInstallToolTarballUnreadable(t *testing.T) {
	w := NewToolWorld(t)
	reg := installForms[0]
	if _, ok, why := w.Install(reg, false); !ok {
		t.Fatalf("warming the registry with plain cargo install: %s", why)
	}
	w.Regdir = w.findRegdir()
	rm(t, w.Extraction(toolDir))
	truncate(t, w.Tarball(toolDir), 100)
	r, ok, why := w.Install(reg, true, "CARGO_SHIM_LOG=debug")
	if !ok || !strings.Contains(r.Stderr, "only eval-tool v1.0.0 itself is planned") {
		t.Fatalf("tool tarball truncated: %s\n%s", why, r)
	}
	flat := filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")
	rm(t, flat)
	if r, ok, why := w.Install(reg, true); !ok || !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs missing)") {
		t.Fatalf("after cargo downloaded the tool again: %s\n%s", why, r)
	}
	rm(t, flat)
	truncate(t, w.Tarball(toolDir), 100)
	if r, ok, why := w.Install(reg, true); !ok || !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs missing)") {
		t.Fatalf("tool tarball truncated again and a dependency damaged: %s\n%s", why, r)
	}
	w.AssertToolHealthy()
}
