package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

var (
	binDir    string // bin/cargo and bin/cargo-shim, built for this run
	realCargo string // the machine's cargo (usually the rustup proxy)
)

func TestMain(m *testing.M) {
	var err error
	realCargo, err = exec.LookPath("cargo")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need cargo on PATH:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "cargo-shim-bin-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // other runner uids run these binaries too
	binDir = filepath.Join(dir, "bin")
	// BinEnv: binaries built beforehand (the NFS suite runs this test
	// binary inside an emulated VM, where go build would take minutes).
	if pre := os.Getenv(BinEnv); pre != "" {
		binDir = pre
	}
	for _, c := range []string{"cargo", "cargo-shim"} {
		if binDir != filepath.Join(dir, "bin") {
			break
		}
		build := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "../cmd/"+c)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", c, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// BinEnv names a directory holding cargo and cargo-shim already built from
// this tree; the tests then build nothing.
const BinEnv = "CARGO_SHIM_TEST_BIN"

var fixtureCrates = loopback.Fixture

// World is one test's registry server, shared registry dir and workspace.
type World struct {
	t        *testing.T
	Root     string
	Reg      *loopback.Registry
	Shared   string // the shared registry directory
	Work     string // the workspace
	Regdir   string // the loopback registry's regdir, once known
	homes    int
	volumes  int
	Checksum map[string]string
	// hosts, under `make multihost`, is the shared registry as each "host"
	// mounts it; home n reaches it through hosts[n%len(hosts)].
	hosts []string
}

func NewWorld(t *testing.T) *World {
	t.Helper()
	return newWorldOf(t, fixtureCrates)
}

// newWorldOf is NewWorld publishing crates (the fixture's names and
// versions, built another way) instead of the fixture.
func newWorldOf(t *testing.T, crates []loopback.CrateSpec) *World {
	t.Helper()
	reg, err := loopback.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w := &World{t: t, Root: t.TempDir(), Reg: reg, Checksum: map[string]string{}}
	w.Shared = filepath.Join(w.Root, "shared-registry")
	w.onHosts()
	os.MkdirAll(w.Shared, 0o755)
	for _, c := range crates {
		w.Checksum[c.Dir()] = w.Reg.Publish(c)
	}
	w.Work = filepath.Join(w.Root, "work")
	if err := loopback.WriteWorkspace(w.Work, crates, loopback.AppMain); err != nil {
		t.Fatal(err)
	}
	return w
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Home makes a fresh CARGO_HOME whose registry/ is the shared directory, as
// a runner container with only registry/ mounted from the host sees it.
func (w *World) Home() string {
	w.homes++
	h := filepath.Join(w.Root, fmt.Sprintf("home%d", w.homes))
	shared := w.Shared
	if len(w.hosts) > 0 {
		shared = w.hosts[w.homes%len(w.hosts)]
	}
	if err := loopback.NewHome(h, w.Reg, shared); err != nil {
		w.t.Fatal(err)
	}
	return h
}

// Env is the environment of a cargo run, plain or through the shim.
func (w *World) Env(home string, viaShim bool, extra ...string) []string {
	dir := ""
	if viaShim {
		dir = binDir
	}
	return loopback.CargoEnv(home, dir, extra...)
}

// Cargo runs cargo in the workspace: through the shim, or plain.
func (w *World) Cargo(home string, viaShim bool, args []string, extra ...string) Result {
	w.t.Helper()
	return w.Start(w.Work, home, viaShim, args, extra...).Wait()
}

type (
	Proc   = loopback.Proc
	Result = loopback.Result
)

// Start runs cargo in dir without waiting for it.
func (w *World) Start(dir, home string, viaShim bool, args []string, extra ...string) *Proc {
	bin := realCargo
	if viaShim {
		bin = filepath.Join(binDir, "cargo")
	}
	return loopback.Start(bin, dir, w.Env(home, viaShim, extra...), args)
}

// Workspace copies the workspace (with its Cargo.lock) for runner n: each
// CI job has a checkout of its own.
func (w *World) Workspace(n int) string {
	w.t.Helper()
	dst := filepath.Join(w.Root, fmt.Sprintf("work-%d", n))
	if err := loopback.CopyDir(w.Work, dst); err != nil {
		w.t.Fatal(err)
	}
	return dst
}

// Lock writes Cargo.lock with a scratch registry, leaving the shared one cold.
func (w *World) Lock() {
	w.t.Helper()
	h := filepath.Join(w.Root, "lock-home")
	writeFile(w.t, filepath.Join(h, "config.toml"), w.Reg.CargoConfig())
	r := w.Start(w.Work, h, false, []string{"generate-lockfile"}).Wait()
	if r.Code != 0 {
		w.t.Fatalf("generate-lockfile: %s", r)
	}
}

// MustCargo fails the test unless cargo exits 0.
func (w *World) MustCargo(home string, viaShim bool, args ...string) Result {
	w.t.Helper()
	r := w.Cargo(home, viaShim, args)
	if r.Code != 0 {
		w.t.Fatalf("cargo %v (shim=%v): %s", args, viaShim, r)
	}
	return r
}

// Warm fills the shared registry with plain cargo and writes Cargo.lock.
func (w *World) Warm() {
	w.t.Helper()
	w.MustCargo(w.Home(), false, "fetch")
	w.Regdir = w.findRegdir()
}

func (w *World) findRegdir() string {
	ents, _ := os.ReadDir(filepath.Join(w.Shared, "src"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "127.0.0.1-") {
			return e.Name()
		}
	}
	w.t.Fatalf("no loopback regdir under %s/src", w.Shared)
	return ""
}

func (w *World) Extraction(dir string) string {
	return filepath.Join(w.Shared, "src", w.Regdir, dir)
}

func (w *World) Tarball(dir string) string {
	return filepath.Join(w.Shared, "cache", w.Regdir, dir+".crate")
}

// AssertHealthy checks every fixture crate deeply: marker, every file's
// content against a tarball whose sha256 matches the registry's checksum.
func (w *World) AssertHealthy() {
	w.t.Helper()
	reg := store.Registry{Root: w.Shared}
	for _, c := range fixtureCrates {
		i := store.Instance{Crate: store.Crate{Name: c.Name, Version: c.Version, Checksum: w.Checksum[c.Dir()]}, Regdir: w.Regdir}
		f := reg.Check(i, store.Deep, false)
		if f.Verdict != store.Healthy || f.TarballMissing || f.Mismatch != "" || f.TarballCorrupt != nil {
			w.t.Errorf("registry not healthy afterwards: %s: %s %s (tarball missing=%v corrupt=%v mismatch=%q)",
				i, f.Verdict, f.Reason, f.TarballMissing, f.TarballCorrupt, f.Mismatch)
		}
	}
}

// RunApp runs the built app binary of a home and returns its output line.
func (w *World) RunApp(home string) string {
	w.t.Helper()
	out, err := exec.Command(filepath.Join(home, "target", "debug", "app")).Output()
	if err != nil {
		w.t.Fatalf("running app: %v", err)
	}
	return strings.TrimSpace(string(out))
}

const wantApp = loopback.WantApp

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout * waitScale())
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitScaleEnv multiplies waitFor's deadlines, which bound how long an
// event (a build reaching its build script) may take to happen, never what
// a test asserts about the shim: set by the NFS suite, whose guest is
// emulated and 10 to 50 times slower than the host.
const WaitScaleEnv = "CARGO_SHIM_TEST_WAIT_SCALE"

func waitScale() time.Duration {
	var n int
	if _, err := fmt.Sscan(os.Getenv(WaitScaleEnv), &n); err == nil && n > 1 {
		return time.Duration(n)
	}
	return 1
}
