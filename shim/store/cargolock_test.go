package store

import (
	"errors"
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

func TestParseCargoLockSkipsInvalidEntries(t *testing.T) {
	bad := []struct{ name, version string }{
		{"../x", "1.0.0"}, {"a/b", "1.0.0"}, {"..", "1.0.0"}, {`a\u0000b`, "1.0.0"},
		{`\u001b[31mred`, "1.0.0"}, {"a\\nb", "1.0.0"}, {strings.Repeat("a", 65), "1.0.0"},
		{"fnv", "1.0"}, {"fnv", "01.0.0"}, {"fnv", "1.0.0-"}, {"fnv", "1.0.0/../../x"}, {"fnv", `1.0.0\u0000`},
	}
	text := "version = 3\n"
	for _, e := range bad {
		text += "[[package]]\nname = \"" + e.name + "\"\nversion = \"" + e.version + "\"\nsource = \"registry+https://x\"\n"
	}
	text += "[[package]]\nname = \"ok_crate-2\"\nversion = \"1.2.3-rc.1+build.5\"\nsource = \"registry+https://x\"\n"
	crates, skipped, err := ParseCargoLockEntries([]byte(text), "Cargo.lock")
	if err != nil {
		t.Fatal(err)
	}
	if len(crates) != 1 || crates[0].Dir() != "ok_crate-2-1.2.3-rc.1+build.5" {
		t.Errorf("planned %v, want only ok_crate-2", crates)
	}
	if len(skipped) != len(bad) {
		t.Errorf("skipped %d entries, want %d: %q", len(skipped), len(bad), skipped)
	}
	if _, err := ParseCargoLock([]byte("[[package]\nbroken"), "ws/Cargo.lock"); err == nil || !strings.Contains(err.Error(), "ws/Cargo.lock") {
		t.Errorf("a TOML error must name the file: %v", err)
	}
}

func TestValidNameAndVersion(t *testing.T) {
	for s, want := range map[string]bool{
		"fnv": true, "serde_json": true, "a-b_c9": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a.b": false, "a b": false, "é": false, "a\x00": false,
	} {
		if ValidName(s) != want {
			t.Errorf("ValidName(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{
		"1.0.7": true, "0.0.0": true, "1.2.3-alpha.1": true, "1.2.3+build.01": true, "1.2.3-0a.x-y": true,
		"1.0": false, "1.0.0.0": false, "01.0.0": false, "1.0.0-01": false, "1.0.0-": false,
		"1.0.0+": false, "1.0.0-a..b": false, "1.0.0/x": false, "v1.0.0": false, "1.0.0-é": false,
		"1.0.0-" + strings.Repeat("a", 200): false,
	} {
		if ValidVersion(s) != want {
			t.Errorf("ValidVersion(%q) = %v", s, !want)
		}
	}
}

// The hostile files (the report's nested inline tables, and the shapes a TOML
// parser is slow on) are refused by the line reader: the benchmarks below
// measure how fast.
func TestParseCargoLockRefusesDeepNesting(t *testing.T) {
	for name, data := range map[string][]byte{
		"inline tables": nestedLock(8000),
		"arrays":        []byte("x = " + strings.Repeat("[", 8000) + strings.Repeat("]", 8000)),
		"dotted keys":   []byte(strings.Repeat("a.", 8000) + "b = 1\n"),
		"table header":  []byte("[" + strings.Repeat("a.", 8000) + "b]\n"),
		"too big":       make([]byte, maxLockSize+1),
	} {
		if _, err := ParseCargoLock(data, "Cargo.lock"); !errors.Is(err, errLockShape) {
			t.Errorf("%s: got %v, want the line reader to refuse it", name, err)
		}
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
