package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/shim"
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
	binDir = filepath.Join(dir, "bin")
	for _, c := range []string{"cargo", "cargo-shim"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "../cmd/"+c).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", c, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The fixture crates cover the layouts whose damage the issue lists.
var fixtureCrates = []CrateSpec{
	{Name: "flat", Version: "1.0.0", Lib: `path = "lib.rs"`, Files: map[string]string{
		"lib.rs": "pub fn flat() -> u32 { 1 }\n",
	}},
	{Name: "autobuild", Version: "0.2.0", Files: map[string]string{
		// An auto-discovered build.rs: removing it makes plain cargo
		// silently skip it and compile a different crate.
		"build.rs":   "fn main() { println!(\"cargo:rustc-cfg=autobuild_ran\"); println!(\"cargo::rustc-check-cfg=cfg(autobuild_ran)\"); }\n",
		"src/lib.rs": "pub fn built() -> bool { cfg!(autobuild_ran) }\n",
	}},
	{Name: "namedbuild", Version: "0.3.1", Extra: `build = "build.rs"`, Files: map[string]string{
		"build.rs":   "fn main() { println!(\"cargo:rustc-env=NAMEDBUILD=yes\"); }\n",
		"src/lib.rs": "pub fn named() -> &'static str { env!(\"NAMEDBUILD\") }\n",
	}},
	{Name: "pmacro", Version: "0.1.5", Lib: "proc-macro = true", Files: map[string]string{
		"src/lib.rs": "use proc_macro::TokenStream;\n#[proc_macro]\npub fn answer(_: TokenStream) -> TokenStream { \"42u32\".parse().unwrap() }\n",
	}},
	{Name: "deep-mods", Version: "2.1.0", Files: map[string]string{
		"src/lib.rs":         "pub mod outer;\npub fn deep() -> u32 { outer::inner::leaf::value() }\n",
		"src/outer/mod.rs":   "pub mod inner;\n",
		"src/outer/inner.rs": "pub mod leaf;\n",
		"src/outer/inner/leaf.rs": "pub fn value() -> u32 { 7 }\n" +
			"// padding so that truncation is visible\n",
	}},
}

const appMain = `fn main() {
    let v = flat::flat() + deep_mods::deep() + pmacro::answer!();
    println!("built={} named={} sum={}", autobuild::built(), namedbuild::named(), v);
}
`

// World is one test's registry server, shared registry dir and workspace.
type World struct {
	t        *testing.T
	Root     string
	Reg      *Registry
	Shared   string // the shared registry directory
	Work     string // the workspace
	Regdir   string // the loopback registry's regdir, once known
	homes    int
	Checksum map[string]string
}

func NewWorld(t *testing.T) *World {
	t.Helper()
	w := &World{t: t, Root: t.TempDir(), Reg: NewRegistry(t), Checksum: map[string]string{}}
	w.Shared = filepath.Join(w.Root, "shared-registry")
	os.MkdirAll(w.Shared, 0o755)
	for _, c := range fixtureCrates {
		w.Checksum[c.Dir()] = w.Reg.Publish(c)
	}
	w.Work = filepath.Join(w.Root, "work")
	var deps []string
	for _, c := range fixtureCrates {
		deps = append(deps, fmt.Sprintf("%s = \"=%s\"", c.Name, c.Version))
	}
	writeFile(t, filepath.Join(w.Work, "Cargo.toml"), "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n"+strings.Join(deps, "\n")+"\n")
	writeFile(t, filepath.Join(w.Work, "src/main.rs"), appMain)
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
	writeFile(w.t, filepath.Join(h, "config.toml"), fmt.Sprintf(
		"[source.crates-io]\nreplace-with = \"loopback\"\n\n[source.loopback]\nregistry = %q\n\n[net]\nretry = 0\n", w.Reg.URL))
	if err := os.Symlink(w.Shared, filepath.Join(h, "registry")); err != nil {
		w.t.Fatal(err)
	}
	return h
}

// Result of one cargo run.
type Result struct {
	Stdout, Stderr string
	Code           int
	Err            error
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.Code, r.Err, r.Stdout, r.Stderr)
}

// Env is the environment of a cargo run: the machine's, less anything that
// would point cargo elsewhere, plus the given overrides.
func (w *World) Env(home string, viaShim bool, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CARGO"), strings.HasPrefix(k, "RUST") && k != "RUSTUP_HOME" && k != "RUSTUP_TOOLCHAIN",
			strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "all_proxy"), k == "PATH":
			continue
		}
		env = append(env, kv)
	}
	path := os.Getenv("PATH")
	if viaShim {
		path = binDir + string(os.PathListSeparator) + path
	}
	env = append(env, "PATH="+path, "CARGO_HOME="+home, "CARGO_TERM_COLOR=never",
		"CARGO_TARGET_DIR="+filepath.Join(home, "target"), "CARGO_INCREMENTAL=0")
	return append(env, extra...)
}

// Cargo runs cargo in the workspace: through the shim, or plain.
func (w *World) Cargo(home string, viaShim bool, args []string, extra ...string) Result {
	w.t.Helper()
	bin := realCargo
	if viaShim {
		bin = filepath.Join(binDir, "cargo")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = w.Work
	cmd.Env = w.Env(home, viaShim, extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String(), Err: err}
	if cmd.ProcessState != nil {
		res.Code = cmd.ProcessState.ExitCode()
	}
	return res
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
	reg := shim.Registry{Root: w.Shared}
	for _, c := range fixtureCrates {
		i := shim.Instance{Crate: shim.Crate{Name: c.Name, Version: c.Version, Checksum: w.Checksum[c.Dir()]}, Regdir: w.Regdir}
		f := reg.Check(i, shim.Deep, false)
		if f.Verdict != shim.Healthy || f.TarballMissing || f.Mismatch != "" || f.TarballCorrupt != nil {
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

const wantApp = "built=true named=yes sum=50"

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
