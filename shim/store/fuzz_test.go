package store

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// Fuzz targets for everything cargo-shim reads that another uid or a crate
// author writes. Their seed corpora (testdata/fuzz/<name>/) run with the
// ordinary tests; `make fuzz` runs each for a while.

// FuzzParseCargoLock: never a panic, every planned crate is one whose name
// and version can safely become a path, and whatever the line reader
// accepts, a full TOML parser reads the same way.
func FuzzParseCargoLock(f *testing.F) {
	f.Add([]byte("version = 3\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"" + strings.Repeat("a", 64) + "\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		crates, _, err := ParseCargoLockEntries(data, "Cargo.lock")
		if err != nil {
			return
		}
		fast, _ := decodeCargoLock(data)
		var doc map[string]any
		if err := toml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("accepted what TOML refuses: %v", err)
		}
		full := lockFromTOML(doc)
		if len(fast.Metadata) == 0 {
			fast.Metadata = nil
		}
		if !reflect.DeepEqual(*fast, full) {
			t.Fatalf("read differently:\n%+v\n%+v", *fast, full)
		}
		for _, c := range crates {
			if !validCrate(c) || !validSHA256(c.Checksum) {
				t.Fatalf("planned an invalid crate %q %q %q", c.Name, c.Version, c.Checksum)
			}
		}
	})
}

// FuzzParseState: never a panic; a record it accepts names only paths
// below the extraction and encodes back to itself.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(stateHeader+"\nsha256 \nrecorded 5\nmarker 1 7 2 3\nd 4 0 5 6 .\nd 7 0 8 9 src\nf 12 src/lib.rs\n"), true)
	// Root's record of an extraction another uid can write: file stamps,
	// and forged ones leaving it.
	f.Add([]byte(stateHeader+"\nsha256 "+strings.Repeat("ab", 32)+"\nrecorded 5\nmarker 1 7 2 3\nd 4 0 5 6 .\nx 9 12 5 6 src/lib.rs\nf 12 src/lib.rs\n"), true)
	f.Add([]byte(stateHeader+"\nsha256 \nrecorded 5\nmarker 1 7 2 3\nd 4 0 5 6 .\nx 9 12 5 6 ../../etc/passwd\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, withFiles bool) {
		s, err := parseState(data, withFiles)
		if err != nil {
			return
		}
		for n, d := range s.Dirs {
			if !validRecordedDir(d.Rel, n == 0) {
				t.Fatalf("accepted directory %q", d.Rel)
			}
		}
		for _, fe := range s.Files {
			if !validRelPath(fe.Path) || fe.Size < 0 {
				t.Fatalf("accepted file %q size %d", fe.Path, fe.Size)
			}
		}
		for _, x := range s.Exposed {
			if !validRelPath(x.Rel) {
				t.Fatalf("accepted file stamp %q", x.Rel)
			}
		}
		if !withFiles {
			return
		}
		again, err := parseState(s.encode(), true)
		if err != nil {
			t.Fatalf("its own encoding does not parse: %v", err)
		}
		s.hasFiles, again.hasFiles = len(s.Files) > 0, len(again.Files) > 0
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", s, again)
		}
	})
}

// FuzzParsePlan: never a panic, never an allocation out of proportion to
// the record; what it accepts only names valid crates and regdirs.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(planMagic))
	// A forged record: one crate with an empty checksum, one with a
	// malformed one, a cold crate under a regdir, an instance read through
	// its state record (-2).
	var w planWriter
	w.b.WriteString(planMagic)
	w.str("k")
	for range 3 {
		w.stamp(stamp{})
	}
	w.uv(1)
	w.str("r")
	w.b.WriteByte(1)
	w.uv(2)
	w.str("fnv")
	w.str("1.0.7")
	w.str("")
	w.str("evil")
	w.str("1.0.0")
	w.str("AB")
	w.uv(1)
	w.uv(0)
	w.uv(1)
	w.uv(0)
	w.uv(0)
	w.i64(viaStateRec)
	f.Add(w.b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePlan(data)
		if err != nil {
			return
		}
		for _, c := range p.crates {
			if c.Checksum != "" && !validChecksum(c.Checksum) {
				t.Fatalf("accepted checksum %q", c.Checksum)
			}
		}
		for i := range p.viaState {
			if !slices.Contains(p.instances, i) {
				t.Fatalf("%s read through its state record, but not planned", i)
			}
		}
		for _, i := range p.instances {
			if !validCrate(i.Crate) || !ValidRegdir(i.Regdir) {
				t.Fatalf("accepted instance %q", i.String())
			}
		}
		for i, s := range p.stamps {
			for n, d := range s.Dirs {
				if !validRecordedDir(d.Rel, n == 0) {
					t.Fatalf("%s: accepted directory %q", i, d.Rel)
				}
			}
		}
	})
}

// FuzzReadIndexCache: what another uid writes as cargo's index cache is
// read as a bounded stream; every entry it returns is for the name asked,
// with a checksum that is a sha256 (an empty or malformed one refuses the
// file), and nothing panics.
func FuzzReadIndexCache(f *testing.F) {
	sum := strings.Repeat("ab", 32)
	f.Add(EncodeIndexCache([]IndexEntry{{Name: "tool", Vers: "1.0.0", Cksum: sum}}))
	f.Add(EncodeIndexCache([]IndexEntry{{Name: "tool", Vers: "1.0.0", Cksum: ""}}))
	f.Add(append([]byte{indexCacheVersion}, make([]byte, 4096)...))
	f.Add([]byte("\x03\x02\x00\x00\x00etag\x001.0.0\x00{\"name\":\"TOOL\",\"vers\":\"1.0.0\",\"cksum\":\"" + sum + "\"}\x00trailing"))
	reg := Registry{Root: f.TempDir()}
	p := reg.IndexCachePath("r", "tool")
	os.MkdirAll(filepath.Dir(p), 0o755)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries, err := reg.ReadIndexCache("r", "tool")
		if err != nil {
			return
		}
		for _, e := range entries {
			if !strings.EqualFold(e.Name, "tool") || !validChecksum(e.Cksum) {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}

// FuzzReadTarball takes a tar stream (gzipped here: mutating compressed
// bytes finds little). What ReadManifest accepts, extract reproduces
// exactly: the same files with the same sizes, nothing else, nothing
// outside the directory; what it refuses, extract refuses too.
func FuzzReadTarball(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		dir := t.TempDir()
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(stream)
		zw.Close()
		p := filepath.Join(dir, fnv.Dir()+".crate")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		m, merr := ReadManifest(p, fnv)
		out := filepath.Join(dir, "out")
		x, xerr := extract(p, fnv, out)
		if (merr == nil) != (xerr == nil) || merr != nil && !sameClass(merr, xerr) {
			t.Fatalf("ReadManifest: %v; extract: %v", merr, xerr)
		}
		if merr != nil {
			return
		}
		if !reflect.DeepEqual(m, x) {
			t.Fatalf("manifests differ:\n%+v\n%+v", m, x)
		}
		if got, want := treeOf(t, out), manifestTree(m); got != want {
			t.Fatalf("extracted tree:\n%s\nmanifest:\n%s", got, want)
		}
	})
}

func sameClass(a, b error) bool {
	return errors.Is(a, ErrUnsafe) == errors.Is(b, ErrUnsafe) && errors.Is(a, ErrCorrupt) == errors.Is(b, ErrCorrupt)
}

// treeOf lists every entry under dir (the marker aside) as "path size" for
// files and "path/" for directories.
func treeOf(t *testing.T, dir string) string {
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == "." || rel == markerName:
		case d.IsDir():
			lines = append(lines, rel+"/")
		case d.Type().IsRegular():
			fi, _ := d.Info()
			lines = append(lines, rel+" "+strconv.FormatInt(fi.Size(), 10))
		default:
			t.Fatalf("extract made %s of type %v", rel, d.Type())
		}
		return nil
	})
	return strings.Join(slices.Sorted(slices.Values(lines)), "\n")
}

func manifestTree(m *Manifest) string {
	var lines []string
	for _, d := range m.Dirs {
		if d != "." {
			lines = append(lines, d+"/")
		}
	}
	for _, f := range m.Files {
		lines = append(lines, f.Path+" "+strconv.FormatInt(f.Size, 10))
	}
	return strings.Join(slices.Sorted(slices.Values(lines)), "\n")
}

// lockFromTOML picks the keys the shim uses out of a generic TOML document,
// with serde's exact (case-sensitive) key matching.
func lockFromTOML(doc map[string]any) cargoLockFile {
	var lf cargoLockFile
	if v, ok := doc["version"].(int64); ok {
		lf.Version = int(v)
	}
	pkgs, _ := doc["package"].([]map[string]any)
	for _, p := range pkgs {
		str := func(k string) string { s, _ := p[k].(string); return s }
		lf.Packages = append(lf.Packages, lockPackage{Name: str("name"), Version: str("version"), Source: str("source"), Checksum: str("checksum")})
	}
	if md, ok := doc["metadata"].(map[string]any); ok && len(md) > 0 {
		lf.Metadata = map[string]string{}
		for k, v := range md {
			lf.Metadata[k], _ = v.(string)
		}
	}
	return lf
}
