package integration

import (
	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// What plain cargo does with a damaged registry (docs/DESIGN.md, C1 and C2);
// each case pins it, so a cargo that changes its behaviour shows up here.
const (
	plainFails       = "fails"
	plainMiscompiles = "miscompiles"
	plainPasses      = "passes"
)

type damageCase struct {
	name    string
	damage  func(t *testing.T, w *World)
	plain   string
	offline bool
	env     []string
	// wantShim matches the shim's stderr.
	wantShim string
	// tarballStays: the damage is one the shim reports but keeps (a
	// readable tarball with another checksum).
	tarballStays bool
}

func rm(t *testing.T, p string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); err == nil {
		t.Fatalf("%s still there", p)
	}
}

func truncate(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

// damageCases: each way the issue lists in which a registry gets damaged
// between runs, with what plain cargo does about it.
var damageCases = []damageCase{
	{name: "src-dir-removed", plain: plainFails, wantShim: `Repairing deep-mods v2\.1\.0 \(src/ missing\)`,
		damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src")) }},
	{name: "flat-lib-removed", plain: plainFails, wantShim: `Repairing flat v1\.0\.0 \(lib\.rs missing\)`,
		damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")) }},
	{name: "autodiscovered-build-rs-removed", plain: plainMiscompiles, wantShim: `Repairing autobuild v0\.2\.0 \(build\.rs missing\)`,
		damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("autobuild-0.2.0"), "build.rs")) }},
	{name: "named-build-rs-removed", plain: plainFails, wantShim: `Repairing namedbuild v0\.3\.1 \(build\.rs missing\)`,
		damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("namedbuild-0.3.1"), "build.rs")) }},
	{name: "cargo-toml-removed", plain: plainFails, wantShim: `Repairing pmacro v0\.1\.5 \(Cargo\.toml missing\)`,
		damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("pmacro-0.1.5"), "Cargo.toml")) }},
	{name: "deep-module-removed", plain: plainFails, wantShim: `Repairing deep-mods v2\.1\.0 \(src/outer/inner/leaf\.rs missing\)`,
		damage: func(t *testing.T, w *World) {
			rm(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src/outer/inner/leaf.rs"))
		}},
	// An in-place truncation changes no directory: the default per-run
	// check cannot see it (README: what each level catches), files can.
	{name: "file-truncated", plain: plainFails, env: []string{"CARGO_SHIM_VERIFY=files"},
		wantShim: `Repairing deep-mods v2\.1\.0 \(src/outer/inner/leaf\.rs has 10 bytes`,
		damage: func(t *testing.T, w *World) {
			truncate(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src/outer/inner/leaf.rs"), 10)
		}},
	{name: "marker-empty", plain: plainPasses, wantShim: `Repairing flat v1\.0\.0 \(marker is ""`,
		damage: func(t *testing.T, w *World) { writeFile(t, filepath.Join(w.Extraction("flat-1.0.0"), ".cargo-ok"), "") }},
	{name: "marker-ok", plain: plainPasses, wantShim: `Repairing flat v1\.0\.0 \(marker is "ok"`,
		damage: func(t *testing.T, w *World) {
			writeFile(t, filepath.Join(w.Extraction("flat-1.0.0"), ".cargo-ok"), "ok")
		}},
	{name: "marker-missing", plain: plainPasses, wantShim: `Repairing flat v1\.0\.0 \(marker missing\)`,
		damage: func(t *testing.T, w *World) { rm(t, filepath.Join(w.Extraction("flat-1.0.0"), ".cargo-ok")) }},
	{name: "extraction-removed-offline", plain: plainPasses, offline: true, wantShim: `Extracting pmacro v0\.1\.5 \(cached, not extracted\)`,
		damage: func(t *testing.T, w *World) { rm(t, w.Extraction("pmacro-0.1.5")) }},
	{name: "tarball-truncated-with-extraction", plain: plainPasses, wantShim: `Removing truncated tarball of flat v1\.0\.0`,
		damage: func(t *testing.T, w *World) { truncate(t, w.Tarball("flat-1.0.0"), 100) }},
	{name: "tarball-truncated-without-extraction", plain: plainFails, wantShim: `Removing truncated tarball of flat v1\.0\.0`,
		damage: func(t *testing.T, w *World) {
			truncate(t, w.Tarball("flat-1.0.0"), 100)
			rm(t, w.Extraction("flat-1.0.0"))
		}},
	{name: "tarball-garbage-appended", plain: plainPasses, tarballStays: true,
		wantShim: `warning: cargo-shim: flat v1\.0\.0: sha256 of .*flat-1\.0\.0\.crate is [0-9a-f]{64}, Cargo\.lock says`,
		damage:   func(t *testing.T, w *World) { appendGarbage(t, w.Tarball("flat-1.0.0")) }},
	// A tarball whose checksum differs is never used to repair: the broken
	// extraction is moved aside and cargo unpacks that tarball itself.
	{name: "tarball-garbage-appended-and-file-removed", plain: plainFails, tarballStays: true,
		wantShim: `Removing broken extraction of flat v1\.0\.0 \(lib\.rs missing\)`,
		damage: func(t *testing.T, w *World) {
			appendGarbage(t, w.Tarball("flat-1.0.0"))
			rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
		}},
	{name: "tarball-removed-online", plain: plainPasses, wantShim: `^$`,
		damage: func(t *testing.T, w *World) { rm(t, w.Tarball("namedbuild-0.3.1")) }},
	{name: "tarball-removed-offline", plain: plainFails, offline: true,
		wantShim: `namedbuild v0\.3\.1 is extracted but its tarball .*namedbuild-0\.3\.1\.crate is missing`,
		damage:   func(t *testing.T, w *World) { rm(t, w.Tarball("namedbuild-0.3.1")) }},
}

func TestDamageBetweenRuns(t *testing.T) {
	for _, tc := range damageCases {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorld(t)
			w.Warm()
			// One clean run through the shim records the state, so that the
			// damage below is found by the per-run check, as between CI jobs.
			w.MustCargo(w.Home(), true, "build")
			tc.damage(t, w)

			plainReg := filepath.Join(w.Root, "plain-registry")
			if out, err := exec.Command("cp", "-a", w.Shared, plainReg).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			args := []string{"build"}
			if tc.offline {
				args = append(args, "--offline")
			}
			// Plain cargo on an identical copy of the damaged registry.
			ph := w.Home()
			if err := loopback.SetShared(ph, plainReg); err != nil {
				t.Fatal(err)
			}
			pr := w.Cargo(ph, false, args)
			switch tc.plain {
			case plainFails:
				if pr.Code == 0 {
					t.Fatalf("plain cargo passed; the damage no longer breaks cargo 1.95 (update docs/DESIGN.md, C1): %s", pr)
				}
			case plainMiscompiles:
				if pr.Code != 0 {
					t.Fatalf("plain cargo failed, expected a silent miscompile: %s", pr)
				}
				if got := w.RunApp(ph); got == wantApp {
					t.Fatalf("plain cargo built the right program; expected the build script to be skipped")
				}
			case plainPasses:
				if pr.Code != 0 {
					t.Fatalf("plain cargo failed, expected it to cope: %s", pr)
				}
			}

			sh := w.Home()
			sr := w.Cargo(sh, true, args, tc.env...)
			if !regexp.MustCompile(`(?m)`+tc.wantShim).MatchString(strings.TrimSpace(sr.Stderr)) && !(tc.wantShim == `^$` && !strings.Contains(sr.Stderr, "cargo-shim")) {
				t.Errorf("shim stderr does not match %q:\n%s", tc.wantShim, sr.Stderr)
			}
			if tc.name == "tarball-removed-offline" {
				if sr.Code == 0 {
					t.Fatalf("cargo --offline passed without the tarball?")
				}
				return
			}
			if sr.Code != 0 {
				t.Fatalf("build through the shim failed: %s", sr)
			}
			if got := w.RunApp(sh); got != wantApp {
				t.Fatalf("app through the shim printed %q, want %q (a build script did not run?)", got, wantApp)
			}
			if !tc.tarballStays {
				w.AssertHealthy()
			}
		})
	}
}

func appendGarbage(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("garbage after the gzip member"); err != nil {
		t.Fatal(err)
	}
}
