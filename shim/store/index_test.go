package store

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeIndexCache writes an index cache file as cargo 1.95 does.
func writeIndexCache(t testing.TB, reg Registry, regdir, name string, entries []IndexEntry) {
	t.Helper()
	p := reg.IndexCachePath(regdir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, EncodeIndexCache(entries), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadIndexCache(t *testing.T) {
	reg := Registry{Root: t.TempDir()}
	want := []IndexEntry{{Name: "Eval-Tool", Vers: "1.0.0", Cksum: strings.Repeat("ab", 32)}, {Name: "Eval-Tool", Vers: "1.1.0", Cksum: strings.Repeat("cd", 32), Yanked: true}}
	for k := range want {
		want[k].Trusted = true // written by this uid, in its own directories
	}
	writeIndexCache(t, reg, "r-1", "Eval-Tool", want)
	if !strings.HasSuffix(reg.IndexCachePath("r-1", "Eval-Tool"), "/index/r-1/.cache/ev/al/eval-tool") {
		t.Fatalf("path %s", reg.IndexCachePath("r-1", "Eval-Tool"))
	}
	got, err := reg.ReadIndexCache("r-1", "eval-tool")
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"../x", "a/b", ""} {
		if _, err := reg.ReadIndexCache("r-1", bad); err == nil {
			t.Errorf("%q accepted as a crate name", bad)
		}
	}
	p := reg.IndexCachePath("r-1", "eval-tool")
	data, _ := os.ReadFile(p)
	data[0] = 2
	os.WriteFile(p, data, 0o644)
	if _, err := reg.ReadIndexCache("r-1", "eval-tool"); err == nil {
		t.Error("a cache of another version was read")
	}
}

// An index-cache entry names no checksum unless it is a sha256: one that
// is empty or malformed makes the file refused, and the install is not
// planned from it.
func TestReadIndexCacheRefusesBadChecksums(t *testing.T) {
	reg := Registry{Root: t.TempDir()}
	for _, sum := range []string{"", "ab", strings.Repeat("AB", 32), strings.Repeat("ab", 32) + "0", strings.Repeat("g", 64)} {
		writeIndexCache(t, reg, "r-1", "tool", []IndexEntry{{Name: "tool", Vers: "1.0.0", Cksum: sum}})
		if got, err := reg.ReadIndexCache("r-1", "tool"); err == nil {
			t.Errorf("checksum %q accepted: %v", sum, got)
		}
	}
}

// The index cache is read as a bounded stream: 64 MiB of NUL bytes (an
// empty version and an empty line, 33 million times) is refused at its
// first entry, with memory that does not grow with the file.
func TestReadIndexCacheNULFileIsBounded(t *testing.T) {
	reg := Registry{Root: t.TempDir()}
	p := reg.IndexCachePath("r-1", "tool")
	os.MkdirAll(filepath.Dir(p), 0o755)
	data := make([]byte, 64<<20)
	data[0] = indexCacheVersion
	for _, tail := range [][]byte{nil, []byte("1\x00{}")} {
		os.WriteFile(p, append(data, tail...), 0o644)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := reg.ReadIndexCache("r-1", "tool")
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Error("a NUL-filled index cache was read")
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
			t.Errorf("reading it allocated %d MiB", n>>20)
		}
	}
	// One field as long as the whole bound: refused past maxIndexField.
	long := append([]byte{indexCacheVersion, 2, 0, 0, 0}, make([]byte, 0, 2<<20)...)
	long = append(long, []byte("etag\x001.0.0\x00")...)
	long = append(long, []byte(strings.Repeat(" ", 2<<20))...)
	os.WriteFile(p, append(long, 0), 0o644)
	if _, err := reg.ReadIndexCache("r-1", "tool"); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a 2 MiB field: %v", err)
	}
}

// TestPackagedLock: the packaged Cargo.lock is taken from a tarball whose
// sha256 is the index's checksum, and from nothing else.
func TestPackagedLock(t *testing.T) {
	reg := Registry{Root: t.TempDir()}
	tool := Crate{Name: "eval-tool", Version: "1.0.0"}
	i := Instance{Crate: tool, Regdir: "r-1"}
	dir := filepath.Dir(reg.Tarball(i))
	os.MkdirAll(dir, 0o755)
	lock := "version = 4\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"
	p := writeTarball(t, dir, tool, []entry{{name: "eval-tool-1.0.0/Cargo.toml", body: "[package]\n"}, {name: "eval-tool-1.0.0/Cargo.lock", body: lock}})
	m, err := ReadManifest(p, tool)
	if err != nil {
		t.Fatal(err)
	}
	i.Checksum = m.SHA256
	if got, err := reg.PackagedLock(i); err != nil || string(got) != lock {
		t.Fatalf("got %q, %v", got, err)
	}
	other := i
	other.Checksum = strings.Repeat("0", 64)
	if _, err := reg.PackagedLock(other); err == nil {
		t.Error("a tarball whose sha256 is not the index's was trusted")
	}
	data, _ := os.ReadFile(p)
	os.WriteFile(p, data[:len(data)/2], 0o644)
	if _, err := reg.PackagedLock(i); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated tarball: %v", err)
	}
	writeTarball(t, dir, tool, []entry{{name: "eval-tool-1.0.0/Cargo.toml", body: "[package]\n"}})
	m, _ = ReadManifest(p, tool)
	i.Checksum = m.SHA256
	if _, err := reg.PackagedLock(i); err == nil {
		t.Error("a tarball without Cargo.lock gave one")
	}
}
