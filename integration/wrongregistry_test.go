package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// The rule: a CARGO_SHIM_REGISTRY that is not the directory
// $CARGO_HOME/registry resolves to is a setting that contradicts the
// filesystem (cargo uses the home's registry whatever the shim is told).
// The drop-in says so once per run, naming both paths, never points the
// home's download lock at the other registry, and cargo still runs;
// `cargo-shim status` exits 1 naming both.
func TestWrongRegistrySettingIsReported(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build") // links this home's cargo lock into the shared registry
	links := map[string]string{}
	for _, n := range []string{".package-cache", ".package-cache-mutate"} {
		links[n], _ = os.Readlink(filepath.Join(home, n))
	}
	// Another registry: a copy, as another runner pool's would be.
	other := filepath.Join(w.Root, "other-registry")
	if err := loopback.CopyDir(w.Shared, other); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(other, ".cargo-shim"))

	r := w.Cargo(home, true, []string{"build"}, "CARGO_SHIM_REGISTRY="+other)
	if r.Code != 0 {
		t.Fatalf("cargo must still run: %s", r)
	}
	if n := strings.Count(r.Stderr, "warning: cargo-shim:"); n != 1 || !strings.Contains(r.Stderr, other) || !strings.Contains(r.Stderr, filepath.Join(home, "registry")) {
		t.Fatalf("want one warning naming %s and %s/registry: %s", other, home, r.Stderr)
	}
	for n, was := range links {
		if now, _ := os.Readlink(filepath.Join(home, n)); now != was {
			t.Errorf("%s re-pointed from %q to %q", n, was, now)
		}
	}
	if _, err := os.Lstat(filepath.Join(other, ".cargo-shim")); err == nil {
		t.Errorf("the drop-in wrote into %s, a registry cargo does not use", other)
	}

	status := func(registry string) Result {
		cmd := loopback.Command(filepath.Join(binDir, "cargo-shim"), w.Work, w.Env(home, true, "CARGO_SHIM_REGISTRY="+registry), []string{"status"})
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode(), Err: err}
	}
	if st := status(other); st.Code != 1 || !strings.Contains(st.Stdout, other) || !strings.Contains(st.Stdout, filepath.Join(home, "registry")) {
		t.Fatalf("status with the wrong registry: want exit 1 naming both paths: %s", st)
	}
	if st := status(w.Shared); strings.Contains(st.Stdout, "CARGO_SHIM_REGISTRY") {
		t.Fatalf("status with the right registry reports a mismatch: %s", st)
	}
}
