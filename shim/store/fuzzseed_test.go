package store

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// TestWriteFuzzSeeds regenerates the seed corpora under testdata/fuzz from
// the attacks and records below (CARGO_SHIM_WRITE_SEEDS=1); crashers the
// fuzzers found are added there by hand and never regenerated away.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("CARGO_SHIM_WRITE_SEEDS") == "" {
		t.Skip("set CARGO_SHIM_WRITE_SEEDS=1 to regenerate testdata/fuzz")
	}
	reg, lock := benchRegistry(t, 3)
	seeds := map[string]map[string][]any{
		"FuzzParseCargoLock": {
			"v4":       {lock},
			"v1":       {[]byte("[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[metadata]\n\"checksum fnv 1.0.7 (registry+https://github.com/rust-lang/crates.io-index)\" = \"" + strings.Repeat("b", 64) + "\"\n")},
			"nested":   {nestedLock(40)},
			"dotted":   {[]byte(strings.Repeat("a.", 40) + "b = 1\n")},
			"nul-name": {[]byte("version = 3\n[[package]]\nname = \"a\\u0000b\"\nversion = \"1.0.0\"\nsource = \"registry+https://x\"\n")},
			"strings":  {[]byte("x = [\"[{.\", '[{.', \"\"\"[{.\n\"\"\", '''[{.''']\n# [{.\n")},
		},
		"FuzzParseState": {
			"forged-dir":    {[]byte(stateHeader + "\nmarker 1 7 2 3\nd 4 0 5 6 .\nd 7 0 8 9 ../../etc\n"), true},
			"negative-size": {[]byte(stateHeader + "\nmarker 1 7 2 3\nd 4 0 5 6 .\nf -5 src/lib.rs\n"), true},
			"no-root":       {[]byte(stateHeader + "\nd 7 0 8 9 src\n"), false},
		},
		"FuzzParsePlan": {},
		"FuzzReadTarball": {
			"duplicates": {rawTar(t, "fnv-1.0.7/a", "x", "fnv-1.0.7/a", "yy")},
			"clash":      {rawTar(t, "fnv-1.0.7/a", "x", "fnv-1.0.7/a/b", "yy")},
			"pax-sparse": {loopback.PAXSparseEntry("fnv-1.0.7/GNUSparseFile.0/big", "fnv-1.0.7/big", 1<<20)},
			"gnu-sparse": {append(loopback.GNUSparseHeader("fnv-1.0.7/big", 1<<20), loopback.Pad([]byte("x"))...)},
			"zero-block": {append(append(loopback.RegularEntry("fnv-1.0.7/lib.rs", "ok"), make([]byte, 512)...), strings.Repeat("garbage!", 64)...)},
			"dir-entries": {append(loopback.TarHeader("fnv-1.0.7/empty/", '5', 0, true),
				loopback.RegularEntry("fnv-1.0.7/./src//.cargo-ok", "{\"v\":1}")...)},
		},
	}
	for _, i := range reg.AllInstances() {
		data, err := os.ReadFile(reg.StatePath(i))
		if err != nil {
			t.Fatal(err)
		}
		seeds["FuzzParseState"][i.Dir()] = []any{data, true}
	}
	plans, _ := filepath.Glob(filepath.Join(reg.PlanDir(), "*"))
	for n, p := range plans {
		data, _ := os.ReadFile(p)
		seeds["FuzzParsePlan"][fmt.Sprint("plan", n)] = []any{data}
	}
	for target, cases := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		for name, args := range cases {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, a := range args {
				switch v := a.(type) {
				case []byte:
					fmt.Fprintf(&b, "[]byte(%q)\n", v)
				case bool:
					fmt.Fprintf(&b, "bool(%v)\n", v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// rawTar is an uncompressed tar of name, body pairs (duplicates kept).
func rawTar(t *testing.T, pairs ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: pairs[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(pairs[i+1])), ModTime: time.Unix(1153704088, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(pairs[i+1]))
	}
	tw.Close()
	return buf.Bytes()
}
