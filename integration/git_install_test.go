package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// AddTool serves a repository holding a binary crate name.
func (w *GitWorld) AddTool(name string) {
	w.t.Helper()
	w.repo(filepath.Join(w.Root, "srv"), name, map[string]string{
		"Cargo.toml":  "[package]\nname = \"" + name + "\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
		"src/main.rs": "fn main() { println!(\"tool\"); }\n",
		"src/util.rs": "pub fn util() {}\n",
	})
}

// Install runs `cargo install --git` of tool into a fresh root.
func (w *GitWorld) Install(home, tool string, viaShim bool, args ...string) loopback.Result {
	w.t.Helper()
	bin, shimDir := realCargo, ""
	if viaShim {
		bin, shimDir = filepath.Join(binDir, "cargo"), binDir
	}
	root, err := os.MkdirTemp(w.Root, "install-root-")
	if err != nil {
		w.t.Fatal(err)
	}
	env := loopback.CargoEnv(home, shimDir, w.Env...)
	r, _ := boundedWait(loopback.Start(bin, w.Root, env, append([]string{"install", "--git", w.URL(tool), "--root", root}, args...)))
	return r
}

// Rule: `cargo install --git URL` has its git source planned: the commit
// its db resolves the reference to is checked out, checked, rebuilt from
// the db when damaged (a file gone under .cargo-ok), its db rebuilt when
// damaged, and both pinned for the install. Plain cargo on the same damage
// is measured in the same run.
func TestGitInstallFromGit(t *testing.T) {
	w := NewGitWorld(t)
	w.AddTool("gtool")
	home := w.Home()
	if r := w.Install(home, "gtool", true); r.Code != 0 {
		t.Fatalf("cold install: %s", r)
	}
	damages := []struct {
		name, expect string
		do           func() error
	}{
		{"main.rs deleted", "Rebuilt git checkout", func() error { return removeIfThere(filepath.Join(w.Checkout("gtool"), "src/main.rs")) }},
		{"main.rs truncated", "Rebuilt git checkout", func() error { return os.Truncate(filepath.Join(w.Checkout("gtool"), "src/main.rs"), 9) }},
		{"db pack truncated", "Rebuilt git db", func() error { return gitDBDamages[0].do(w, w.DB("gtool")) }},
		{"db HEAD removed, checkout's main.rs deleted", "Rebuilt git db", func() error {
			os.Remove(filepath.Join(w.Checkout("gtool"), "src/main.rs"))
			return removeIfThere(filepath.Join(w.DB("gtool"), "HEAD"))
		}},
	}
	for _, branch := range [][]string{nil, {"--branch", "main"}} {
		plainFailed := 0
		for _, d := range damages {
			if err := d.do(); err != nil {
				t.Fatalf("%s: %v", d.name, err)
			}
			plain := w.Install(home, "gtool", false, branch...)
			if plain.Code != 0 {
				plainFailed++
			}
			if err := d.do(); err != nil {
				t.Fatalf("%s: %v", d.name, err)
			}
			r := w.Install(home, "gtool", true, branch...)
			if r.Code != 0 || !strings.Contains(r.Stderr, d.expect) {
				t.Errorf("%s %v: install through the shim: %s", d.name, branch, r)
			}
			t.Logf("install --git %v, %s: plain cargo exit %d (%s); shim exit %d", branch, d.name, plain.Code, lastLines(plain.Stderr, 1), r.Code)
		}
		t.Logf("install --git %v: plain cargo failed %d of %d, through the shim 0 expected", branch, plainFailed, len(damages))
	}
}

// removeIfThere removes p; already gone is no error (a damage applied again
// after a run that did not repair it).
func removeIfThere(p string) error {
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
