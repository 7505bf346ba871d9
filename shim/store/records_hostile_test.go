package store

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A forged state record names paths the check would lstat: only paths
// below the extraction are accepted, and the whole record is void otherwise.
func TestStateRecordRefusesForgedPaths(t *testing.T) {
	head := stateHeader + "\nmarker 1 7 2 3\nd 4 0 5 6 .\n"
	for name, line := range map[string]string{
		"dir escapes":        "d 7 0 8 9 ../../etc",
		"absolute dir":       "d 7 0 8 9 /etc",
		"second root":        "d 7 0 8 9 .",
		"file escapes":       "f 3 ../x",
		"negative size":      "f -1 src/lib.rs",
		"control character":  "f 3 src/\x1b[2Jlib.rs",
		"marker as a dir":    "d 7 0 8 9 .cargo-ok",
		"bad checksum":       "sha256 ../../../etc/passwd",
		"overflowing number": "d 99999999999999999999 0 8 9 src",
	} {
		if _, err := parseState([]byte(head+line+"\n"), true); err == nil {
			t.Errorf("%s: accepted %q", name, line)
		}
	}
	if _, err := parseState([]byte(head+"d 7 0 8 9 src/a\nf 3 src/a/lib.rs\n"), true); err != nil {
		t.Errorf("a valid record refused: %v", err)
	}
}

// The record's size is another uid's to choose: a 64 GiB sparse file is
// refused after reading 8 MiB, not allocated.
func TestRecordSizeIsBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(stateHeader + "\n")
	f.Truncate(64 << 30)
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readState(p, true); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v, want the size bound", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*maxRecordSize {
		t.Errorf("allocated %d bytes for a record bounded at %d", grew, maxRecordSize)
	}
}

// A plan record's counts are checked against the bytes that follow before
// anything is allocated, and its names must be valid crates and regdirs.
func TestPlanRecordRefusesForgedCounts(t *testing.T) {
	w := planHead("127.0.0.1-0123456789abcdef")
	good := w.b.Len()
	huge := func(build func(*planWriter)) []byte {
		var x planWriter
		x.b.Write(w.b.Bytes()[:good])
		build(&x)
		return x.b.Bytes()
	}
	cases := map[string][]byte{
		"crate count": huge(func(x *planWriter) { x.uv(1 << 30) }),
		"instance count": huge(func(x *planWriter) {
			x.uv(0)
			x.uv(0)
			x.uv(1 << 30)
		}),
		"path in a name": huge(func(x *planWriter) {
			x.uv(1)
			x.str("../../x")
			x.str("1.0.0")
			x.str("")
			x.uv(0)
			x.uv(0)
		}),
		"bad checksum": huge(func(x *planWriter) {
			x.uv(1)
			x.str("fnv")
			x.str("1.0.7")
			x.str("zz")
			x.uv(0)
			x.uv(0)
		}),
	}
	for name, data := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := parsePlan(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: allocated %d bytes for a %d-byte record", name, grew, len(data))
		}
	}
	regdir := planHead("..")
	regdir.uv(0)
	regdir.uv(0)
	regdir.uv(0)
	if _, err := parsePlan(regdir.b.Bytes()); err == nil {
		t.Error(`regdir ".." accepted`)
	}
}

// planHead is a plan record up to its one regdir.
func planHead(regdir string) *planWriter {
	w := &planWriter{}
	w.b.WriteString(planMagic)
	w.str(strings.Repeat("0", 32))
	for range 3 {
		w.stamp(stamp{})
	}
	w.uv(1)
	w.str(regdir)
	w.b.WriteByte(1)
	return w
}

// Directory names another uid made are listed only when cargo could have
// made them: never a lock path with a newline, never a name printed raw.
func TestAllInstancesSkipsNamesCargoNeverMakes(t *testing.T) {
	reg := Registry{Root: t.TempDir()}
	for _, d := range []string{"src/r-0123456789abcdef/fnv-1.0.7", "src/r-0123456789abcdef/a\nb-1.0.0",
		"src/r-0123456789abcdef/\x1b[2J-1.0.0", "src/\x1b[2J-0123/fnv-1.0.7", "cache/r-0123456789abcdef"} {
		os.MkdirAll(filepath.Join(reg.Root, d), 0o755)
	}
	os.WriteFile(filepath.Join(reg.Root, "cache/r-0123456789abcdef/x\ty-1.0.0.crate"), nil, 0o644)
	var got []string
	for _, i := range reg.AllInstances() {
		got = append(got, i.String())
	}
	if strings.Join(got, ";") != "fnv v1.0.7 (r-0123456789abcdef)" {
		t.Errorf("listed %q", got)
	}
}
