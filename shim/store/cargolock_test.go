package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCargoLockVersions(t *testing.T) {
	const sum = "aaaa000000000000000000000000000000000000000000000000000000000000"
	cases := []struct {
		name, text string
		want       []string // name-version:checksum
	}{
		{"v1-metadata-checksums", `
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["fnv 1.0.7 (registry+https://github.com/rust-lang/crates.io-index)"]

[[package]]
name = "fnv"
version = "1.0.7"
source = "registry+https://github.com/rust-lang/crates.io-index"

[metadata]
"checksum fnv 1.0.7 (registry+https://github.com/rust-lang/crates.io-index)" = "` + sum + `"
`, []string{"fnv-1.0.7:" + sum}},
		{"v3-inline-checksum", `version = 3

[[package]]
name = "fnv"
version = "1.0.7"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "` + sum + `"

[[package]]
name = "local"
version = "0.1.0"
`, []string{"fnv-1.0.7:" + sum}},
		{"v4-sparse-git-path", `version = 4

[[package]]
name = "a-b"
version = "0.2.0-alpha.1"
source = "sparse+http://127.0.0.1:1234/"
checksum = "` + sum + `"

[[package]]
name = "gitdep"
version = "0.1.0"
source = "git+https://example.invalid/x.git#0123456789abcdef"

[[package]]
name = "a-b"
version = "0.2.0-alpha.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "` + sum + `"
`, []string{"a-b-0.2.0-alpha.1:" + sum}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			crates, err := ParseCargoLock([]byte(tc.text), "Cargo.lock")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range crates {
				got = append(got, c.Dir()+":"+c.Checksum)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseCargoLockRejectsPathsInNames(t *testing.T) {
	for _, name := range []string{"../x", "a/b", ".."} {
		text := "version = 3\n[[package]]\nname = \"" + name + "\"\nversion = \"1.0.0\"\nsource = \"registry+https://x\"\n"
		if _, err := ParseCargoLock([]byte(text), "Cargo.lock"); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := ParseCargoLock([]byte("[[package]\nbroken"), "ws/Cargo.lock"); err == nil || !strings.Contains(err.Error(), "ws/Cargo.lock") {
		t.Errorf("a TOML error must name the file: %v", err)
	}
}

func TestFindCargoLock(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "ws", "member", "src"), 0o755)
	os.WriteFile(filepath.Join(root, "ws", "Cargo.lock"), nil, 0o644)
	if got := FindCargoLock(filepath.Join(root, "ws", "member", "src"), ""); got != filepath.Join(root, "ws", "Cargo.lock") {
		t.Errorf("upward from cwd: %q", got)
	}
	if got := FindCargoLock("/", filepath.Join(root, "ws", "member", "Cargo.toml")); got != filepath.Join(root, "ws", "Cargo.lock") {
		t.Errorf("from --manifest-path: %q", got)
	}
	if got := FindCargoLock(root, ""); got != "" {
		t.Errorf("no lock above %s: got %q", root, got)
	}
}
