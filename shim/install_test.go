package shim

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionReq(t *testing.T) {
	cases := []struct {
		req  string
		in   string // versions that match
		out  string // versions that do not
		fail bool
	}{
		{req: "=1.2.3", in: "1.2.3", out: "1.2.4 1.2.3-alpha 1.3.0"},
		{req: "^1.2.3", in: "1.2.3 1.9.0", out: "2.0.0 1.2.2 2.0.0-alpha 1.5.0-rc.1"},
		{req: "^0.2.3", in: "0.2.3 0.2.9", out: "0.3.0 0.2.2"},
		{req: "^0.0.3", in: "0.0.3", out: "0.0.4"},
		{req: "1.2", in: "1.2.0 1.8.1", out: "2.0.0 1.1.9"},
		{req: "~1.2.3", in: "1.2.3 1.2.9", out: "1.3.0"},
		{req: ">=1, <2", in: "1.0.0 1.99.0", out: "2.0.0 0.9.0"},
		{req: ">1.2", in: "1.3.0", out: "1.2.9"},
		{req: "<=1.2", in: "1.2.9 1.0.0", out: "1.3.0"},
		{req: "*", in: "0.0.1 9.0.0", out: "1.0.0-beta"},
		{req: "=2.0.0-rc.1", in: "2.0.0-rc.1", out: "2.0.0-rc.2 2.0.0"},
		{req: ">=2.0.0-rc.1", in: "2.0.0-rc.2 2.0.0", out: "2.0.0-alpha 2.1.0-rc.1"},
		{req: "a.b", fail: true},
	}
	for _, tc := range cases {
		req, err := parseReq(tc.req)
		if (err != nil) != tc.fail {
			t.Fatalf("%s: err %v", tc.req, err)
		}
		for _, v := range strings.Fields(tc.in) {
			if sv, _ := parseSemver(v); !req.matches(sv) {
				t.Errorf("%s should match %s", tc.req, v)
			}
		}
		for _, v := range strings.Fields(tc.out) {
			if sv, _ := parseSemver(v); req.matches(sv) {
				t.Errorf("%s should not match %s", tc.req, v)
			}
		}
	}
}

func TestParseSemverRefusesPaths(t *testing.T) {
	for _, v := range []string{"1.0.0-../../x", "1.0.0+a/b", "1.0.0-", "1.0.0-a..b", "1.0", "01.0.0", "1.0.0-a\x00"} {
		if _, err := parseSemver(v); err == nil {
			t.Errorf("%q accepted as a version", v)
		}
	}
	for _, v := range []string{"1.0.0", "1.0.0-rc.1", "1.0.0+build.5", "110.0.0+1.1.0f", "1.0.0-x-y"} {
		if _, err := parseSemver(v); err != nil {
			t.Errorf("%q refused", v)
		}
	}
}

func TestChooseVersion(t *testing.T) {
	entries := []IndexEntry{
		{Vers: "1.0.0"}, {Vers: "1.10.0"}, {Vers: "1.9.0"}, {Vers: "2.0.0", Yanked: true},
		{Vers: "2.1.0-beta.1"}, {Vers: "0.9.0"},
	}
	cases := map[string]string{"": "1.10.0", "1.9.0": "1.9.0", "2.0.0": "2.0.0", "^0.9": "0.9.0",
		"<1.5": "1.0.0", ">=2.1.0-beta.1": "2.1.0-beta.1", "3.0.0": ""}
	for spec, want := range cases {
		req, err := installReq(spec)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := chooseVersion(entries, req)
		if got := map[bool]string{true: e.Vers}[ok]; got != want {
			t.Errorf("%q: got %q, want %q", spec, got, want)
		}
	}
}

func TestParseInstallArgs(t *testing.T) {
	cases := map[string]string{
		"eval-tool --locked":                          "crates=[eval-tool] path= version= git=false",
		"--path . --locked":                           "crates=[] path=. version= git=false",
		"--path=../x":                                 "crates=[] path=../x version= git=false",
		"--root /r --version 1.2.3 eval-tool":         "crates=[eval-tool] path= version=1.2.3 git=false",
		"eval-tool@1.0.0 --registry loop -j 2":        "crates=[eval-tool@1.0.0] path= version= git=false",
		"--bin eval eval-tool":                        "crates=[eval-tool] path= version= git=false",
		"--bin --locked eval-tool":                    "crates=[eval-tool] path= version= git=false",
		"--git https://example.invalid/x.git --tag v": "crates=[] path= version= git=true",
		"--features a,b -F c a b":                     "crates=[a b] path= version= git=false",
	}
	for in, want := range cases {
		a := parseInstallArgs(strings.Fields(in))
		got := "crates=[" + strings.Join(a.crates, " ") + "] path=" + a.path + " version=" + a.version + " git=" + map[bool]string{true: "true", false: "false"}[a.git]
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
}

// writeIndexCache writes an index cache file as cargo 1.95 does.
func writeIndexCache(t testing.TB, reg Registry, regdir, name string, entries []IndexEntry) {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte(indexCacheVersion)
	binary.Write(&b, binary.LittleEndian, uint32(2))
	b.WriteString("etag: \"x\"\x00")
	for _, e := range entries {
		line, _ := json.Marshal(e)
		b.WriteString(e.Vers + "\x00" + string(line) + "\x00")
	}
	p := reg.IndexCachePath(regdir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadIndexCache(t *testing.T) {
	reg := Registry{Root: t.TempDir()}
	want := []IndexEntry{{Name: "Eval-Tool", Vers: "1.0.0", Cksum: "ab"}, {Name: "Eval-Tool", Vers: "1.1.0", Yanked: true}}
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
