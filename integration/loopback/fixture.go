package loopback

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The fixture crates cover the layouts whose damage the issue lists.
var Fixture = []CrateSpec{
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

// AppMain uses every fixture crate; its output proves build scripts ran.
const AppMain = `fn main() {
    let v = flat::flat() + deep_mods::deep() + pmacro::answer!();
    println!("built={} named={} sum={}", autobuild::built(), namedbuild::named(), v);
}
`

// WantApp is what AppMain prints when every crate was built right.
const WantApp = "built=true named=yes sum=50"

// WriteWorkspace writes a package "app" depending on crates (exact versions)
// with main.rs as its binary.
func WriteWorkspace(dir string, crates []CrateSpec, mainRS string) error {
	var deps []string
	for _, c := range crates {
		deps = append(deps, fmt.Sprintf("%s = \"=%s\"", c.Name, c.Version))
	}
	manifest := "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n" + strings.Join(deps, "\n") + "\n"
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte(manifest), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "src", "main.rs"), []byte(mainRS), 0o644)
}

// CargoConfig is a $CARGO_HOME/config.toml that replaces crates.io with this
// registry.
func (r *Registry) CargoConfig() string {
	return fmt.Sprintf("[source.crates-io]\nreplace-with = \"loopback\"\n\n[source.loopback]\nregistry = %q\n\n[net]\nretry = 0\n", r.URL)
}
