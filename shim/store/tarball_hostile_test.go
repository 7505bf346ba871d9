package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

func writeRaw(t *testing.T, dir string, c Crate, blocks ...[]byte) string {
	t.Helper()
	p := filepath.Join(dir, c.Dir()+".crate")
	if err := os.WriteFile(p, loopback.Gzip(blocks...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileList(m *Manifest) string {
	var s []string
	for _, f := range m.Files {
		s = append(s, fmt.Sprintf("%s:%d:%o", f.Path, f.Size, f.Mode))
	}
	return strings.Join(s, " ")
}

// cargo's unpacker replaces a file that comes again: the last entry's
// content, size and mode win, and the manifest lists the path once.
func TestTarballDuplicateEntriesLastWins(t *testing.T) {
	dir := t.TempDir()
	p := writeTarball(t, dir, fnv, []entry{
		{name: "fnv-1.0.7/src/lib.rs", body: "first, longer body"},
		{name: "fnv-1.0.7/Cargo.toml", body: "[package]"},
		{name: "fnv-1.0.7/src/lib.rs", body: "last", mode: 0o600},
	})
	m, err := ReadManifest(p, fnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fileList(m), "src/lib.rs:4:600 Cargo.toml:9:644"; got != want {
		t.Errorf("manifest %q, want %q", got, want)
	}
	out := filepath.Join(dir, "out")
	if _, err := extract(p, fnv, out); err != nil {
		t.Fatalf("extract: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(out, "src", "lib.rs"))
	fi, _ := os.Stat(filepath.Join(out, "src", "lib.rs"))
	if string(got) != "last" || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("extracted %q mode %v, want the last entry's", got, fi.Mode())
	}
}

// Where cargo's unpacker fails (a file and a directory at one path), the
// shim refuses the tarball: cargo will fail on it as it would anyway.
func TestTarballDirFileClashRefused(t *testing.T) {
	cases := map[string][]entry{
		"file then dir":       {{name: "fnv-1.0.7/src", body: "x"}, {name: "fnv-1.0.7/src/", typ: tar.TypeDir}},
		"dir then file":       {{name: "fnv-1.0.7/src/", typ: tar.TypeDir}, {name: "fnv-1.0.7/src", body: "x"}},
		"file then child":     {{name: "fnv-1.0.7/src", body: "x"}, {name: "fnv-1.0.7/src/lib.rs", body: "y"}},
		"child then file":     {{name: "fnv-1.0.7/src/lib.rs", body: "y"}, {name: "fnv-1.0.7/src", body: "x"}},
		"marker as directory": {{name: "fnv-1.0.7/.cargo-ok/x", body: "y"}},
		"control character":   {{name: "fnv-1.0.7/src/\x1b[2Jlib.rs", body: "x"}},
		"newline":             {{name: "fnv-1.0.7/a\nb", body: "x"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeTarball(t, dir, fnv, entries)
			if _, err := ReadManifest(p, fnv); !errors.Is(err, ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			if _, err := extract(p, fnv, filepath.Join(dir, "out")); !errors.Is(err, ErrUnsafe) {
				t.Fatalf("extract: got %v, want ErrUnsafe", err)
			}
		})
	}
}

// A GNU header (what cargo package writes) for a regular file whose name
// ends in '/' is a directory to cargo's reader, a file to Go's: refused.
func TestTarballFileWithDirectoryNameRefused(t *testing.T) {
	p := writeRaw(t, t.TempDir(), fnv, loopback.TarHeader("fnv-1.0.7/src/", '0', 1, true), loopback.Pad([]byte("x")))
	if _, err := ReadManifest(p, fnv); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("got %v, want ErrUnsafe", err)
	}
}

// The paths cargo reads the same: "." and empty components vanish, a
// marker anywhere is skipped, a directory entry makes an empty directory.
func TestTarballPathsAsCargoReadsThem(t *testing.T) {
	dir := t.TempDir()
	p := writeTarball(t, dir, fnv, []entry{
		{name: "fnv-1.0.7/./src//lib.rs", body: "x"},
		{name: "fnv-1.0.7/src/.cargo-ok", body: "{\"v\":1}"},
		{name: "fnv-1.0.7/empty/", typ: tar.TypeDir},
		{name: "fnv-1.0.7/", typ: tar.TypeDir},
	})
	out := filepath.Join(dir, "out")
	m, err := extract(p, fnv, out)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileList(m); got != "src/lib.rs:1:644" {
		t.Errorf("manifest %q", got)
	}
	if got := strings.Join(m.Dirs, " "); got != ". empty src" {
		t.Errorf("dirs %q, want . empty src", got)
	}
	if _, err := os.Lstat(filepath.Join(out, "src", ".cargo-ok")); err == nil {
		t.Error("a packaged marker was extracted")
	}
	if fi, err := os.Stat(filepath.Join(out, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory entry not made: %v", err)
	}
}

// Go's reader expands sparse entries (a 513-byte entry became a 512 MiB
// file); cargo's writes GNU ones expanded and PAX ones raw. Both refused.
func TestTarballSparseRefused(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][][]byte{
		"pax 1.0": {loopback.PAXSparseEntry("fnv-1.0.7/GNUSparseFile.0/big", "fnv-1.0.7/big", 512<<20)},
		"gnu old": {loopback.GNUSparseHeader("fnv-1.0.7/big", 512<<20), loopback.Pad([]byte("x"))},
	}
	for name, blocks := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeRaw(t, dir, fnv, blocks...)
			if _, err := ReadManifest(p, fnv); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "sparse") {
				t.Fatalf("got %v, want a sparse refusal", err)
			}
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(name, " ", ""))
			if _, err := extract(p, fnv, out); !errors.Is(err, ErrUnsafe) {
				t.Fatalf("extract: got %v", err)
			}
			if du := (Registry{Root: dir}).DiskUsage(out); du > 4096 {
				t.Fatalf("extract wrote %d bytes", du)
			}
		})
	}
}

// cargo stops at the first zero block; what follows is never read.
func TestTarballEndsAtFirstZeroBlock(t *testing.T) {
	dir := t.TempDir()
	p := writeRaw(t, dir, fnv, loopback.TarHeader("fnv-1.0.7/lib.rs", '0', 2, true), loopback.Pad([]byte("ok")),
		make([]byte, 512), []byte(strings.Repeat("garbage!", 64)))
	m, err := ReadManifest(p, fnv)
	if err != nil || fileList(m) != "lib.rs:2:644" {
		t.Fatalf("got %v, %v; want lib.rs alone", m, err)
	}
}

// cargo counts the decompressed stream, headers included, against
// max(512 MiB, 20x the .crate): past it, cargo fails and the shim refuses.
func TestTarballOversizeRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 513 MiB through gzip")
	}
	dir := t.TempDir()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	const size = 512<<20 + 1
	tw.WriteHeader(&tar.Header{Name: "fnv-1.0.7/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: time.Unix(1, 0)})
	zero := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zero)) {
		tw.Write(zero[:min(int64(len(zero)), size-n)])
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(dir, fnv.Dir()+".crate")
	os.WriteFile(p, buf.Bytes(), 0o644)
	if _, err := ReadManifest(p, fnv); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("got %v, want the size limit", err)
	}
}

// The cap counts headers: many small entries reach it too.
func TestTarStreamCapCountsEverything(t *testing.T) {
	s := &tarStream{r: bytes.NewReader(make([]byte, 2048)), left: 1024}
	n, err := s.Read(make([]byte, 4096))
	if n != 1024 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, errUnpackLimit) {
		t.Fatalf("past the cap: %v", err)
	}
}
