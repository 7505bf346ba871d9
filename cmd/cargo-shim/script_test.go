//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/duration"
	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// The scripts run this binary as cargo-shim, and as the drop-in cargo
// (for status, which asks cargo on PATH whether it is the shim).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cargo-shim": func() {
			args := os.Args[1:]
			if len(args) > 0 && args[0] == "shim" {
				args = args[1:]
			}
			os.Exit(run(args, os.Stdout, os.Stderr))
		},
		"cargo": func() { os.Exit(shim.Main(os.Args[1:])) },
	})
}

// TestScripts runs testdata/script/*.txtar: every subcommand's text and
// JSON output against golden files, failures included.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		// UPDATE_GOLDEN=1 rewrites the golden files in the scripts; review
		// the diff before committing it.
		UpdateScripts: os.Getenv("UPDATE_GOLDEN") != "",
		Setup: func(e *testscript.Env) error {
			e.Setenv("HOME", e.WorkDir)
			e.Setenv("CARGO_HOME", filepath.Join(e.WorkDir, "home"))
			e.Setenv("CARGO_SHIM_REGISTRY", "")
			e.Setenv("CARGO_TERM_COLOR", "")
			e.Setenv("NO_COLOR", "")
			// For scripts that take cargo-shim off PATH, or put the real
			// cargo (REAL_CARGO_DIR) before the drop-in (SHIM_BIN).
			self, err := exec.LookPath("cargo-shim")
			e.Setenv("CARGO_SHIM", self)
			e.Setenv("SHIM_BIN", filepath.Dir(self))
			e.Setenv("REAL_CARGO_DIR", filepath.Dir(realCargo()))
			return err
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkregistry": cmdMkregistry,
			"backdate":   cmdBackdate,
			"addstats":   cmdAddstats,
			"holdlock":   cmdHoldlock,
		},
	})
}

// regdir is the name cargo gives crates.io's sparse index.
const regdir = "index.crates.io-1949cf8c6b5b557f"

// scriptCrates are the crates of a script's registry.
var scriptCrates = []loopback.CrateSpec{
	{Name: "fnv", Version: "1.0.7", Lib: `path = "lib.rs"`, Files: map[string]string{
		"lib.rs": "pub struct FnvHasher(u64);\n", "README.md": "fnv\n",
	}},
	{Name: "itoa", Version: "1.0.11", Files: map[string]string{
		"src/lib.rs": "pub fn fmt(n: u64) -> String { n.to_string() }\n", "src/udiv128.rs": "// nothing\n",
	}},
	{Name: "cfg-if", Version: "1.0.0", Files: map[string]string{
		"src/lib.rs": "#[macro_export]\nmacro_rules! cfg_if { () => {} }\n",
	}},
}

// mkregistry DIR: a cargo registry in DIR holding scriptCrates, their
// tarballs in cache/ and extracted into src/ by the shim's own repair code
// (as the drop-in extracts a cached crate), and $WORK/Cargo.lock naming
// them with their checksums.
func cmdMkregistry(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkregistry DIR")
	}
	root := ts.MkAbs(args[0])
	reg := store.Registry{Root: root}
	var lock strings.Builder
	lock.WriteString("version = 4\n")
	for _, c := range scriptCrates {
		tb := c.Tarball()
		sum := sha256.Sum256(tb)
		i := store.Instance{Crate: store.Crate{Name: c.Name, Version: c.Version, Checksum: hex.EncodeToString(sum[:])}, Regdir: regdir}
		ts.Check(os.MkdirAll(filepath.Dir(reg.Tarball(i)), 0o755))
		ts.Check(os.MkdirAll(filepath.Join(root, "index", regdir), 0o755))
		ts.Check(os.WriteFile(reg.Tarball(i), tb, 0o644))
		act, _, err := reg.RepairCrate(context.Background(), i, store.RepairOptions{})
		ts.Check(err)
		if act.Kind != store.ActExtracted {
			ts.Fatalf("extracting %s: %+v", i, act)
		}
		fmt.Fprintf(&lock, "\n[[package]]\nname = %q\nversion = %q\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = %q\n", c.Name, c.Version, i.Checksum)
	}
	ts.Check(os.WriteFile(ts.MkAbs("Cargo.lock"), []byte(lock.String()), 0o644))
}

// backdate DURATION PATH...: set the mtimes of each path (and, for a
// directory, of everything in it) to DURATION ago.
func cmdBackdate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: backdate DURATION PATH...")
	}
	d, err := duration.Parse(args[0])
	ts.Check(err)
	t := time.Now().Add(-d)
	for _, p := range args[1:] {
		ts.Check(filepath.Walk(ts.MkAbs(p), func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chtimes(path, t, t)
		}))
	}
}

// addstats REGISTRY KIND=N...: add one run's record to the registry's
// stats, as the drop-in does after a run that did something (planned=1,
// wait=DURATION, failopen=N, any other word is a repair kind).
func cmdAddstats(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: addstats REGISTRY KIND=N...")
	}
	var rec stats.Record
	for _, a := range args[1:] {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "planned":
			rec.Planned = v == "1"
		case "wait":
			d, err := duration.Parse(v)
			ts.Check(err)
			rec.Wait(d)
		case "failopen":
			n, err := strconv.Atoi(v)
			ts.Check(err)
			rec.FailOpen += n
		default:
			n, err := strconv.Atoi(v)
			ts.Check(err)
			for ; n > 0; n-- {
				rec.Act(k)
			}
		}
	}
	ts.Check(stats.Add(ts.MkAbs(args[0]), rec, time.Now()))
}

// holdlock [-x] PATH: take a shared lock on PATH, as a running build's
// holder does (-x: exclusive, as gc removing the crate does), in this
// process (not the one under test) until the script ends.
func cmdHoldlock(ts *testscript.TestScript, neg bool, args []string) {
	mode := lockfile.Shared
	if len(args) == 2 && args[0] == "-x" {
		mode, args = lockfile.Exclusive, args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdlock [-x] PATH")
	}
	lk, err := lockfile.Try(ts.MkAbs(args[0]), mode)
	ts.Check(err)
	ts.Defer(func() { lk.Release() })
}

// realCargo is the first cargo on PATH after the scripts' own commands.
func realCargo() string {
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(d, "cargo")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && !strings.HasPrefix(d, os.TempDir()) {
			return p
		}
	}
	return ""
}
