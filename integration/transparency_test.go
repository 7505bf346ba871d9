package integration

import (
	"bytes"
	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitCodeOfFailingBuild(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	writeFile(t, filepath.Join(w.Work, "src/main.rs"), "fn main() { let x: u32 = \"no\"; }\n")
	plain := w.Cargo(w.Home(), false, []string{"build"})
	shimmed := w.Cargo(w.Home(), true, []string{"build"})
	if plain.Code == 0 || shimmed.Code != plain.Code {
		t.Fatalf("exit codes: plain %d, shim %d; want equal and non-zero\n%s", plain.Code, shimmed.Code, shimmed)
	}
	if !strings.Contains(shimmed.Stderr, "mismatched types") {
		t.Fatalf("cargo's error did not reach stderr:\n%s", shimmed.Stderr)
	}
}

// The shim execs cargo, so the process the caller started is cargo: a signal
// to it reaches cargo, and the caller sees cargo killed by that signal.
func TestSignalReachesCargo(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	writeFile(t, filepath.Join(w.Work, "src/bin/wait.rs"), "fn main() { println!(\"ready\"); let mut s = String::new(); std::io::stdin().read_line(&mut s).unwrap(); }\n")
	home := w.Home()
	w.MustCargo(home, true, "build", "--bin", "wait")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		cmd := loopback.Command(filepath.Join(binDir, "cargo"), w.Work, w.Env(home, true), []string{"run", "-q", "--bin", "wait"})
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
			t.Fatalf("program did not start: %q %v", buf, err)
		}
		cmd.Process.Signal(sig)
		cmd.Wait()
		stdin.Close()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != sig {
			t.Fatalf("after %v: wait status %v, want killed by %v", sig, cmd.ProcessState, sig)
		}
	}
}

func TestStdinStdoutPassThrough(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	writeFile(t, filepath.Join(w.Work, "src/bin/echo.rs"), "use std::io::Read;\nfn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap(); print!(\"got:{}\", s.to_uppercase()); }\n")
	cmd := loopback.Command(filepath.Join(binDir, "cargo"), w.Work, w.Env(w.Home(), true), []string{"run", "-q", "--bin", "echo"})
	cmd.Stdin = strings.NewReader("hello\nworld\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if out.String() != "got:HELLO\nWORLD\n" {
		t.Fatalf("stdout %q", out.String())
	}
}

func TestRegistryFreeCommandsTakeNoLock(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	for _, args := range [][]string{{"--version"}, {"-V"}, {"help"}, {"clean"}, {"locate-project"}, {"pkgid"}, {"build", "--help"}} {
		r := w.Cargo(home, true, args, "CARGO_SHIM_LOG=debug")
		if r.Code != 0 {
			t.Fatalf("cargo %v: %s", args, r)
		}
		if strings.Contains(r.Stderr, "cargo-shim") {
			t.Fatalf("cargo %v printed shim output:\n%s", args, r.Stderr)
		}
		if _, err := os.Lstat(filepath.Join(w.Shared, ".cargo-shim")); err == nil {
			t.Fatalf("cargo %v created the shim's state dir: registry I/O on a registry-free command", args)
		}
	}
	// The same registry is used (and locked) by a real build.
	w.MustCargo(home, true, "build")
	if _, err := os.Lstat(filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir, "flat-1.0.0.lock")); err != nil {
		t.Fatalf("build took no lock: %v", err)
	}
}

func TestToolchainReachesRustupProxy(t *testing.T) {
	if _, err := exec.LookPath("rustup"); err != nil {
		t.Skip("no rustup proxy on this machine")
	}
	w := NewWorld(t)
	r := w.Cargo(w.Home(), true, []string{"+stable", "--version"}, "RUSTUP_TOOLCHAIN=")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "cargo ") {
		t.Fatalf("cargo +stable --version through the shim: %s", r)
	}
	r = w.Cargo(w.Home(), true, []string{"+no-such-toolchain-xyz", "--version"})
	if r.Code == 0 || !strings.Contains(r.Stderr, "no-such-toolchain-xyz") {
		t.Fatalf("an unknown toolchain must reach rustup and fail there: %s", r)
	}
}

func TestShimTwiceOnPathDoesNotRecurse(t *testing.T) {
	w := NewWorld(t)
	copyDir := filepath.Join(w.Root, "copy")
	os.MkdirAll(copyDir, 0o755)
	data, _ := os.ReadFile(filepath.Join(binDir, "cargo"))
	os.WriteFile(filepath.Join(copyDir, "cargo"), data, 0o755)
	linkDir := filepath.Join(w.Root, "link")
	os.MkdirAll(linkDir, 0o755)
	os.Symlink(filepath.Join(binDir, "cargo"), filepath.Join(linkDir, "cargo"))
	path := strings.Join([]string{binDir, binDir, linkDir, copyDir, filepath.Dir(realCargo), os.Getenv("PATH")}, ":")
	cmd := exec.Command(filepath.Join(binDir, "cargo"), "--version")
	cmd.Env = append(w.Env(w.Home(), true), "PATH="+path)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("cargo --version with the shim on PATH several times did not finish: recursion")
	}
	if err != nil || !strings.HasPrefix(string(out), "cargo ") {
		t.Fatalf("%v: %s", err, out)
	}
}

func TestNoRealCargo(t *testing.T) {
	w := NewWorld(t)
	cmd := exec.Command(filepath.Join(binDir, "cargo"), "build")
	cmd.Env = append(w.Env(w.Home(), true), "PATH="+binDir)
	cmd.Dir = w.Work
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 101 {
		t.Fatalf("exit %d, want cargo's 101: %s", code, out)
	}
	if !strings.Contains(string(out), "cannot find the real cargo") || !strings.Contains(string(out), "CARGO_SHIM_REAL_CARGO") {
		t.Fatalf("message does not say what to do: %s", out)
	}
}

// An unwritable lock dir (here: a file where the shim's dir should be) is an
// internal failure: one warning, cargo runs; strict mode makes it an error.
func TestFailOpenUnwritableLockDir(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	writeFile(t, filepath.Join(w.Shared, ".cargo-shim"), "not a directory")
	r := w.Cargo(w.Home(), true, []string{"build"})
	if r.Code != 0 {
		t.Fatalf("fail-open build failed: %s", r)
	}
	if n := strings.Count(r.Stderr, "warning: cargo-shim:"); n != 1 {
		t.Fatalf("want exactly one warning line, got %d:\n%s", n, r.Stderr)
	}
	r = w.Cargo(w.Home(), true, []string{"build"}, "CARGO_SHIM_STRICT=1")
	if r.Code != 101 || !strings.Contains(r.Stderr, "error: cargo-shim:") || strings.Contains(r.Stderr, "Compiling") {
		t.Fatalf("strict mode must fail before cargo runs: %s", r)
	}
}

func TestFailOpenUnparsableCargoLock(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	lock := filepath.Join(w.Work, "Cargo.lock")
	data, _ := os.ReadFile(lock)
	os.WriteFile(lock, append(data, []byte("\n[[package]\nbroken")...), 0o644)
	r := w.Cargo(w.Home(), true, []string{"metadata", "--format-version=1"})
	if !strings.Contains(r.Stderr, "warning: cargo-shim: cannot read the planned crates") || !strings.Contains(r.Stderr, "Cargo.lock") {
		t.Fatalf("want a warning naming Cargo.lock: %s", r)
	}
	plain := w.Cargo(w.Home(), false, []string{"metadata", "--format-version=1"})
	if r.Code != plain.Code {
		t.Fatalf("shim exit %d, plain cargo %d", r.Code, plain.Code)
	}
}

// A registry mounted read-only: the shim cannot lock or record; it warns
// once and cargo does what it would have done.
func TestFailOpenReadOnlyRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a read-only bind mount in a private mount namespace")
	}
	if !loopback.BindMounts {
		t.Skip("unshare -m not permitted here")
	}
	w := NewWorld(t)
	w.Warm()
	run := func(viaShim bool, extra ...string) Result {
		home := w.Home()
		bin := realCargo
		if viaShim {
			bin = filepath.Join(binDir, "cargo")
		}
		// The shared registry, mounted read-only where the runner's cargo
		// looks for it.
		cmd := exec.Command("unshare", "-m", "sh", "-c", `mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@"`,
			"sh", w.Shared, filepath.Join(home, "registry"), bin, "build", "--offline")
		cmd.Dir = w.Work
		cmd.Env = w.Env(home, viaShim, extra...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
	}
	plain := run(false)
	shimmed := run(true)
	if plain.Code != 0 {
		t.Fatalf("plain cargo failed on a read-only warm registry: %s", plain)
	}
	if shimmed.Code != 0 {
		t.Fatalf("shim made a build fail that plain cargo passes: %s", shimmed)
	}
	if n := strings.Count(shimmed.Stderr, "warning: cargo-shim:"); n != 1 {
		t.Fatalf("want one warning line, got %d:\n%s", n, shimmed.Stderr)
	}
	strict := run(true, "CARGO_SHIM_STRICT=1")
	if strict.Code != 101 || !strings.Contains(strict.Stderr, "error: cargo-shim:") {
		t.Fatalf("strict: %s", strict)
	}
}

// Root-owned leftovers: a runner with another uid repairs a crate whose
// directories it cannot write (rename needs only the parent), and does not
// fail on them.
func TestRootOwnedLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make root-owned leftovers and run as another uid")
	}
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "build") // as root: lock files, state, plan
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	rm(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src", "outer", "inner", "leaf.rs"))
	// A shared registry as fleets set it up: its directories writable by
	// every runner uid; the crates inside are root's, read-only to others.
	for _, d := range []string{w.Shared, filepath.Join(w.Shared, "src"), filepath.Join(w.Shared, "src", w.Regdir),
		filepath.Join(w.Shared, "cache"), filepath.Join(w.Shared, "cache", w.Regdir)} {
		os.Chmod(d, 0o777)
	}
	for d := w.Root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.Chmod(filepath.Join(w.Extraction("deep-mods-2.1.0"), "src", "outer", "inner"), 0o555)
	const nobody = 65534
	home := filepath.Join(w.Root, "nobody-home")
	os.MkdirAll(home, 0o755)
	os.Symlink(w.Shared, filepath.Join(home, "registry"))
	os.Chown(home, nobody, nobody)
	cmd := exec.Command(filepath.Join(binDir, "cargo"), "build")
	cmd.Dir = w.Work
	cmd.Env = append(w.Env(home, true), "CARGO_SHIM_REAL_CARGO=/bin/true", "HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("shim as uid %d: %v\n%s", nobody, err, out)
	}
	for _, want := range []string{"Repairing flat v1.0.0 (lib.rs missing)", "Repairing deep-mods v2.1.0 (src/outer/inner/leaf.rs missing)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	w.AssertHealthy()
	// Root's gc later deletes what the runner could only set aside.
	if r := w.Admin("gc", "--max-age", "1000h"); r.Code != 0 {
		t.Fatalf("gc: %s", r)
	}
}

// A build script that runs `cargo` from PATH reaches a second shim under the
// first one's cargo: it must neither recurse nor wait for the outer build's
// locks, and it does not repair what the outer build holds.
func TestNestedShimUnderABuild(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	writeFile(t, filepath.Join(w.Work, "build.rs"), `fn main() {
    let out = std::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--offline"])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running cargo from a build script");
    if !out.status.success() {
        panic!("nested cargo failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    println!("cargo:warning=nested cargo metadata: {} bytes", out.stdout.len());
    let through_shim = String::from_utf8_lossy(&out.stderr).contains("[cargo-shim]");
    println!("cargo:warning=nested through the shim: {}", through_shim);
}
`)
	done := make(chan Result, 1)
	go func() { done <- w.Cargo(w.Home(), true, []string{"build"}, "CARGO_SHIM_LOG=debug") }()
	select {
	case r := <-done:
		if r.Code != 0 {
			t.Fatalf("build with a nested cargo: %s", r)
		}
		if !strings.Contains(r.Stderr, "nested cargo metadata:") || !strings.Contains(r.Stderr, "nested through the shim: true") {
			t.Fatalf("the build script did not run cargo through the shim:\n%s", r.Stderr)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("a nested shim deadlocked with the outer build")
	}
}

// A CARGO_HOME the shim cannot write (cargo's lock cannot be shared): one
// warning, and the per-crate checks and repairs still happen.
func TestUnwritableCargoHomeStillRepairs(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	rm(t, filepath.Join(home, ".package-cache"))
	writeFile(t, filepath.Join(home, ".package-cache", "in-the-way"), "a directory where a lock file should be")
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	r := w.Cargo(home, true, []string{"build"})
	if !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs missing)") || strings.Count(r.Stderr, "warning: cargo-shim:") != 1 {
		t.Fatalf("want one warning and the repair: %s", r)
	}
}
