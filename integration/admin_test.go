package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// Admin runs cargo-shim with the given arguments against the world's
// registry.
func (w *World) Admin(args ...string) Result {
	w.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "cargo-shim"), args...)
	cmd.Env = append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode(), Err: err}
}

func decode[T any](t *testing.T, r Result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("JSON output does not parse: %v\n%s", err, r)
	}
	return v
}

// Every damage the drop-in repairs, verify finds (exit 1, naming crate,
// version, regdir, path and what is wrong) and repair heals (then verify
// exits 0 and the registry is healthy).
func TestVerifyAndRepairEachDamage(t *testing.T) {
	for _, tc := range damageCases {
		if tc.name == "tarball-removed-online" || tc.name == "tarball-removed-offline" || tc.name == "extraction-removed-offline" {
			continue // not damage: cargo downloads or extracts what is missing
		}
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorld(t)
			w.Warm()
			w.MustCargo(w.Home(), true, "build")
			if r := w.Admin("verify", "--json"); r.Code != 0 {
				t.Fatalf("verify of a healthy registry: %s", r)
			}
			tc.damage(t, w)
			args := []string{"verify", "--json"}
			if strings.Contains(tc.name, "truncated") && !strings.Contains(tc.name, "tarball") {
				args = append(args, "--deep")
			}
			if tc.tarballStays {
				args = append(args, "--deep", "--lockfile", filepath.Join(w.Work, "Cargo.lock"))
			}
			r := w.Admin(args...)
			// One rule for both commands (README, verify --help): a
			// truncated tarball under a healthy extraction is a warning,
			// listed, exit status 0, kept by repair.
			wantCode := 1
			if tc.name == "tarball-truncated-with-extraction" {
				wantCode = 0
			}
			if r.Code != wantCode {
				t.Fatalf("verify after damage: exit %d, want %d: %s", r.Code, wantCode, r)
			}
			rep := decode[admin.VerifyReport](t, r)
			for _, p := range rep.Problems {
				if p.Warning != (wantCode == 0) {
					t.Errorf("problem %+v: warning=%v, want %v", p, p.Warning, wantCode == 0)
				}
			}
			if len(rep.Problems) == 0 {
				t.Fatalf("no problem reported: %s", r.Stdout)
			}
			for _, p := range rep.Problems {
				if p.Crate == "" || p.Version == "" || p.Regdir != w.Regdir || p.Path == "" || p.Problem == "" || p.Kind == "" {
					t.Errorf("problem does not name crate, version, regdir, path and what: %+v", p)
				}
			}
			r = w.Admin("repair")
			if tc.name == "tarball-truncated-with-extraction" {
				assertTruncatedTarballKept(t, w, r)
				return
			}
			if tc.tarballStays {
				if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, "sha256") {
					t.Fatalf("repair must leave (and report) the tarball with another checksum: %s", r)
				}
				return
			}
			if r.Code != 0 {
				t.Fatalf("repair: %s", r)
			}
			if r := w.Admin("verify", "--deep"); r.Code != 0 {
				t.Fatalf("verify after repair: %s", r)
			}
			// A truncated tarball is removed for cargo to download again.
			w.MustCargo(w.Home(), true, "fetch")
			w.AssertHealthy()
		})
	}
}

// assertTruncatedTarballKept: repair leaves a truncated tarball under a
// healthy extraction (cargo never reads it, and --offline needs it there),
// reports it, and the next online run through the shim replaces it.
func assertTruncatedTarballKept(t *testing.T, w *World, r Result) {
	t.Helper()
	if r.Code != 0 || !strings.Contains(r.Stdout, "flat-1.0.0.crate") {
		t.Fatalf("repair must keep and report the truncated tarball: %s", r)
	}
	if _, err := os.Stat(w.Tarball("flat-1.0.0")); err != nil {
		t.Fatalf("repair removed the tarball an offline build needs: %v", err)
	}
	w.MustCargo(w.Home(), true, "build", "--offline")
	w.MustCargo(w.Home(), true, "build")
	if r := w.Admin("verify", "--deep"); r.Code != 0 {
		t.Fatalf("verify after an online build through the shim: %s", r)
	}
}

// A file rewritten in place with the same size: only --deep sees it.
func TestVerifyDeepSeesContent(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	p := filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(data), "1", "2", 1)), 0o644)
	if r := w.Admin("verify"); r.Code != 0 {
		t.Fatalf("plain verify flags a same-size rewrite? %s", r)
	}
	r := w.Admin("verify", "--deep", "--json")
	rep := decode[admin.VerifyReport](t, r)
	if r.Code != 1 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Problem, "differs") {
		t.Fatalf("deep verify: %s", r)
	}
	if r := w.Admin("repair", "--deep"); r.Code != 0 || !strings.Contains(r.Stdout, "Repaired flat v1.0.0 (lib.rs differs from the tarball)") {
		t.Fatalf("repair --deep: %s", r)
	}
	if r := w.Admin("verify", "--deep"); r.Code != 0 {
		t.Fatalf("verify --deep after repair --deep: %s", r)
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	w := NewWorld(t)
	for _, args := range [][]string{{"verify", "--no-such-flag"}, {"nope"}, {"gc"}, {"verify", "extra"}} {
		if r := w.Admin(args...); r.Code != 2 {
			t.Errorf("cargo-shim %v: exit %d, want 2: %s", args, r.Code, r)
		}
	}
	for _, sub := range []string{"verify", "repair", "gc", "status"} {
		if r := w.Admin(sub, "--help"); r.Code != 0 || !strings.Contains(r.Stdout, "Usage: cargo-shim "+sub) {
			t.Errorf("cargo-shim %s --help: %s", sub, r)
		}
	}
	if r := w.Admin("verify", "--registry", filepath.Join(w.Root, "nowhere")); r.Code != 2 {
		t.Errorf("missing registry: exit %d, want 2", r.Code)
	}
}

// gc racing a build that holds its crates: the build passes, busy crates
// are kept even with --max-age 0s; once it is done they go.
func TestGCKeepsCratesOfRunningBuilds(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	held, open := w.StartHeldBuild()
	st := decode[admin.StatusReport](t, w.Admin("status", "--json"))
	if len(st.Locked) != len(fixtureCrates) || !st.PathCargoIsShim || st.Filesystem == "" {
		t.Errorf("status during the build: %+v", st)
	}
	for _, h := range st.Locked {
		if h.Mode != "shared" || h.Pid == 0 || h.ForPid != held.Cmd.Process.Pid {
			t.Errorf("lock holder %+v: want shared, held for cargo pid %d", h, held.Cmd.Process.Pid)
		}
	}
	w.gcBesideHeldBuild(held, open, "--max-age", "0s", "--crate-max-age", "0s", "--json")
	// Its lock holder lets go once it sees cargo exit, a moment later on a
	// loaded machine.
	waitFor(t, "the build's locks to be released", time.Minute, func() bool {
		return len(decode[admin.StatusReport](t, w.Admin("status", "--json")).Locked) == 0
	})
	// Dry run: says, removes nothing.
	r := w.Admin("gc", "--max-age", "0s", "--dry-run", "--json")
	dry := decode[admin.GCReport](t, r)
	if len(dry.Removed) != len(fixtureCrates) || dry.FreedBytes <= 0 {
		t.Fatalf("dry run: %s", r.Stdout)
	}
	if _, err := os.Stat(w.Extraction("flat-1.0.0")); err != nil {
		t.Fatal("dry run removed an extraction")
	}
	// Unused for longer than an hour? No: kept.
	if r := decode[admin.GCReport](t, w.Admin("gc", "--max-age", "1h", "--json")); len(r.Removed) != 0 {
		t.Fatalf("gc --max-age 1h removed fresh crates: %+v", r.Removed)
	}
	r = w.Admin("gc", "--max-age", "0s", "--json")
	rep := decode[admin.GCReport](t, r)
	if r.Code != 0 || len(rep.Removed) != len(fixtureCrates) || rep.FreedBytes <= 0 {
		t.Fatalf("gc after the build: %s", r)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.Shared, ".cargo-shim", "trash")); len(ents) != 0 {
		t.Fatalf("trash not emptied: %d entries", len(ents))
	}
	if _, err := os.Stat(w.Tarball("flat-1.0.0")); err != nil {
		t.Fatal("gc without --crate-max-age removed a tarball")
	}
	// Offline build re-extracts from the kept tarballs.
	w.MustCargo(w.Home(), true, "build", "--offline")
	w.AssertHealthy()
}

// `cargo shim verify` reaches the admin command through cargo's
// external-subcommand convention.
func TestCargoShimSubcommand(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	r := w.Cargo(w.Home(), true, []string{"shim", "verify", "--registry", w.Shared})
	if r.Code != 0 || !strings.Contains(r.Stdout, "Verified 5 crates") {
		t.Fatalf("cargo shim verify: %s", r)
	}
}

// A bad setting is an error of the admin command, never a silent default.
func TestAdminRefusesBadConfig(t *testing.T) {
	w := NewWorld(t)
	cmd := exec.Command(filepath.Join(binDir, "cargo-shim"), "repair")
	cmd.Env = append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared, "CARGO_SHIM_LOCK_TIMEOUT=soon")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "CARGO_SHIM_LOCK_TIMEOUT") {
		t.Fatalf("exit %d, want 2 naming CARGO_SHIM_LOCK_TIMEOUT:\n%s", code, out)
	}
}

// gcBesideHeldBuild runs gc with args while held (StartHeldBuild) pins every
// crate, then lets the build finish: gc must find every crate busy, remove
// nothing but temporary files, and the build must pass.
func (w *World) gcBesideHeldBuild(held *Proc, open func(), args ...string) {
	w.t.Helper()
	r := w.Admin(append([]string{"gc"}, args...)...)
	rep := decode[admin.GCReport](w.t, r)
	if len(rep.Busy) != len(fixtureCrates) {
		w.t.Errorf("gc %v while a build holds every crate: busy=%d, want %d: %s", args, len(rep.Busy), len(fixtureCrates), r.Stdout)
	}
	for _, e := range rep.Removed {
		if e.What != "temp" {
			w.t.Errorf("gc %v removed %+v from under a running build", args, e)
		}
	}
	open()
	if r := held.Wait(); r.Code != 0 {
		w.t.Fatalf("the build gc raced: %s", r)
	}
}
