package loopback

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The binary crate the install tests publish: a tool depending on every
// fixture crate and on generated leaf crates, 20+ dependencies in all, as
// a CI job's tools (cargo-audit has 200) have.
const (
	ToolName    = "eval-tool"
	ToolVersion = "1.0.0"
	toolLeaves  = 18
)

// ToolLeaves are the leaf crates of the tool, beside the fixture.
func ToolLeaves() []CrateSpec {
	var out []CrateSpec
	for n := 0; n < toolLeaves; n++ {
		out = append(out, CrateSpec{Name: fmt.Sprintf("leaf-%02d", n), Version: "0.1.0", Files: map[string]string{
			"src/lib.rs": fmt.Sprintf("pub fn leaf() -> u32 { %d }\n", n),
		}})
	}
	return out
}

// WantTool is what the installed tool prints when every crate was built
// right (the leaves sum to 0+1+...+17).
var WantTool = fmt.Sprintf("%s leaves=%d", WantApp, toolLeaves*(toolLeaves-1)/2)

// ToolSpec is the tool's crate, without its Cargo.lock.
func ToolSpec() CrateSpec {
	deps := append(append([]CrateSpec{}, Fixture...), ToolLeaves()...)
	var lines, sum []string
	for _, d := range deps {
		lines = append(lines, fmt.Sprintf("%s = \"=%s\"", d.Name, d.Version))
	}
	for _, l := range ToolLeaves() {
		sum = append(sum, strings.ReplaceAll(l.Name, "-", "_")+"::leaf()")
	}
	main := strings.Replace(AppMain, "println!(\"built={} named={} sum={}\", ",
		"let leaves = "+strings.Join(sum, " + ")+";\n    println!(\"built={} named={} sum={} leaves={}\", ", 1)
	main = strings.Replace(main, "namedbuild::named(), v);", "namedbuild::named(), v, leaves);", 1)
	return CrateSpec{Name: ToolName, Version: ToolVersion, Deps: lines, Files: map[string]string{"src/main.rs": main}}
}

// WriteCrate writes a spec's files (and its generated Cargo.toml) into dir,
// as a checkout of its sources.
func WriteCrate(dir string, c CrateSpec) error {
	files := map[string]string{"Cargo.toml": c.Manifest()}
	for k, v := range c.Files {
		files[k] = v
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// PublishWithLock publishes a binary crate as `cargo package` packs one:
// with the Cargo.lock of its checkout, which lock(dir) writes. dir is left
// as that checkout (for `cargo install --path`). It returns the .crate's
// sha256.
func (r *Registry) PublishWithLock(c CrateSpec, dir string, lock func(dir string) error) (string, error) {
	if err := WriteCrate(dir, c); err != nil {
		return "", err
	}
	if err := lock(dir); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
	if err != nil {
		return "", err
	}
	files := map[string]string{"Cargo.lock": string(data)}
	for k, v := range c.Files {
		files[k] = v
	}
	c.Files = files
	return r.Publish(c), nil
}
