package shim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/shim/store"
)

// BenchmarkInstallSource250 is what planning `cargo install NAME` adds to a
// run before the plan: the cached index (60 versions) and, cold, the tool's
// tarball (200 source files and a Cargo.lock of 250 crates, the size of
// cargo-audit's); warm, the memoized plan input instead of the tarball.
func BenchmarkInstallSource250(b *testing.B) {
	reg := store.Registry{Root: b.TempDir()}
	const regdir = "127.0.0.1-0123456789abcdef"
	tool := store.Crate{Name: "eval-tool", Version: "1.59.0"}
	var lock strings.Builder
	lock.WriteString("version = 4\n")
	for k := 0; k < 250; k++ {
		fmt.Fprintf(&lock, "\n[[package]]\nname = \"crate-%05d\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = %q\n", k, strings.Repeat("ab", 32))
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name, body string) {
		tw.WriteHeader(&tar.Header{Name: tool.Dir() + "/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	add("Cargo.lock", lock.String())
	for f := 0; f < 200; f++ {
		add(fmt.Sprintf("src/m%03d.rs", f), strings.Repeat("fn f() {}\n", 200))
	}
	tw.Close()
	zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	i := store.Instance{Crate: tool, Regdir: regdir}
	os.MkdirAll(filepath.Dir(reg.Tarball(i)), 0o755)
	os.WriteFile(reg.Tarball(i), buf.Bytes(), 0o644)
	var entries []store.IndexEntry
	for v := 0; v < 60; v++ {
		entries = append(entries, store.IndexEntry{Name: tool.Name, Vers: fmt.Sprintf("1.%d.0", v), Cksum: hex.EncodeToString(sum[:])})
	}
	p := reg.IndexCachePath(regdir, tool.Name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, store.EncodeIndexCache(entries), 0o644)
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	r := &Run{Reg: reg, Log: NewLogger(devnull, LogQuiet, os.Getenv)}
	a := parseInstallArgs([]string{tool.Name, "--locked"})
	for _, warm := range []bool{false, true} {
		b.Run(map[bool]string{false: "cold", true: "warm"}[warm], func(b *testing.B) {
			for n := 0; n < b.N; n++ {
				if !warm {
					os.RemoveAll(reg.PlanDir())
				}
				if _, data := r.installSource(a); data == nil || bytes.Count(data, []byte("[[package]]")) != 251 {
					b.Fatalf("planned %q", data)
				}
			}
			if ents, _ := os.ReadDir(reg.PlanDir()); len(ents) != 1 {
				b.Fatalf("%d plan records, want the install's", len(ents))
			}
		})
	}
}
