package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// The input half of issue 9: crafted tarballs and Cargo.locks. Each test
// runs plain cargo and the shim on the same input and asserts the shim's
// build ends as plain cargo's does and no valid extraction was replaced.

type rawEntry struct {
	name, body string
	typ        byte
	pax        map[string]string
}

// craftedCrate builds a .crate from entries as given: duplicates, PAX
// records, whatever Go's writer accepts.
func craftedCrate(t *testing.T, entries []rawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)),
			ModTime: time.Unix(1153704088, 0), PAXRecords: e.pax, Format: tar.FormatGNU}
		if e.pax != nil {
			hdr.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// addCrate publishes c and makes the app depend on it (unused: cargo still
// builds it, so a wrong file fails the build).
func (w *World) addCrate(c loopback.CrateSpec) {
	w.Checksum[c.Dir()] = w.Reg.Publish(c)
	manifest, _ := os.ReadFile(filepath.Join(w.Work, "Cargo.toml"))
	writeFile(w.t, filepath.Join(w.Work, "Cargo.toml"), fmt.Sprintf("%s%s = \"=%s\"\n", manifest, c.Name, c.Version))
}

func manifestOf(name, version string) string {
	return fmt.Sprintf("[package]\nname = %q\nversion = %q\nedition = \"2021\"\n", name, version)
}

// inodes records the fixture extractions' identities: a valid extraction
// replaced or moved gets another inode.
func (w *World) inodes() map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range fixtureCrates {
		if fi, err := os.Stat(w.Extraction(c.Dir())); err == nil {
			out[c.Dir()] = fi.Sys().(*syscall.Stat_t).Ino
		}
	}
	return out
}

func (w *World) assertSameInodes(before map[string]uint64) {
	w.t.Helper()
	after := w.inodes()
	for dir, ino := range before {
		if after[dir] != ino {
			w.t.Errorf("valid extraction %s was replaced or removed", dir)
		}
	}
}

func shimLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "cargo-shim") {
			out = append(out, l)
		}
	}
	return out
}

// A .crate with duplicate entries: cargo's last one wins. The shim repairs
// it the same way, and without Cargo.lock the crate does not stop the
// repair of the others.
func TestHostileDuplicateEntries(t *testing.T) {
	w := NewWorld(t)
	dup := loopback.CrateSpec{Name: "csi9dup", Version: "1.0.0", Raw: craftedCrate(t, []rawEntry{
		{name: "csi9dup-1.0.0/Cargo.toml", body: manifestOf("csi9dup", "1.0.0")},
		{name: "csi9dup-1.0.0/src/lib.rs", body: "compile_error!(\"the first entry was used\");\n"},
		{name: "csi9dup-1.0.0/src/lib.rs", body: "pub fn dup() -> u32 { 2 }\n"},
	})}
	w.addCrate(dup)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	lib := filepath.Join(w.Extraction(dup.Dir()), "src", "lib.rs")
	for _, noLock := range []bool{false, true} {
		before := w.inodes()
		delete(before, "flat-1.0.0")
		rm(t, lib)
		rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
		if noLock {
			rm(t, filepath.Join(w.Work, "Cargo.lock"))
		}
		r := w.MustCargo(w.Home(), true, "build")
		for _, want := range []string{"Repairing csi9dup v1.0.0", "Repairing flat v1.0.0"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("no Cargo.lock=%v: %q missing:\n%s", noLock, want, r.Stderr)
			}
		}
		if got, _ := os.ReadFile(lib); string(got) != "pub fn dup() -> u32 { 2 }\n" {
			t.Errorf("repaired lib.rs is %q, want the last entry", got)
		}
		w.assertSameInodes(before)
		// What the repair made is what the check expects: the next run
		// has nothing to say.
		if again := w.MustCargo(w.Home(), true, "build"); len(shimLines(again.Stderr)) > 0 || strings.Contains(again.Stderr, "Repairing") {
			t.Errorf("no Cargo.lock=%v: the run after the repair was not quiet:\n%s", noLock, again.Stderr)
		}
	}
	w.AssertHealthy()
}

// A PAX sparse entry: cargo 1.95 writes its raw bytes under the header's
// name; Go's reader would expand it to 512 MiB. The shim never repairs from
// such a tarball, so the build fails or passes exactly as plain cargo's.
func TestHostileSparseEntry(t *testing.T) {
	w := NewWorld(t)
	sp := loopback.CrateSpec{Name: "csi9sparse", Version: "1.0.0", Raw: loopback.Gzip(
		loopback.RegularEntry("csi9sparse-1.0.0/Cargo.toml", manifestOf("csi9sparse", "1.0.0")),
		loopback.RegularEntry("csi9sparse-1.0.0/src/lib.rs", "pub fn sparse() {}\n"),
		loopback.PAXSparseEntry("csi9sparse-1.0.0/GNUSparseFile.0/data.bin", "csi9sparse-1.0.0/data.bin", 512<<20),
	)}
	w.addCrate(sp)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	before := w.inodes()
	rm(t, filepath.Join(w.Extraction(sp.Dir()), "src", "lib.rs"))
	viaShim := w.Cargo(w.Home(), true, []string{"build"})
	plain := w.Cargo(w.Home(), false, []string{"build"})
	if viaShim.Code != plain.Code || plain.Code == 0 {
		t.Fatalf("shim exit %d, plain cargo %d (want both to fail on the missing lib.rs):\n%s", viaShim.Code, plain.Code, viaShim.Stderr)
	}
	if !strings.Contains(viaShim.Stderr, "sparse") {
		t.Errorf("no warning naming the sparse entry:\n%s", viaShim.Stderr)
	}
	assertNoFileOver(t, w.Extraction(sp.Dir()), 1<<20)
	w.assertSameInodes(before)
}

func assertNoFileOver(t *testing.T, dir string, max int64) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, _ := d.Info(); fi != nil && fi.Size() > max {
				t.Errorf("%s has %d bytes", p, fi.Size())
			}
		}
		return nil
	})
}

// A .crate that unpacks past cargo's limit: cargo fails on it, with or
// without the shim, and the shim extracts nothing of it.
func TestHostileOversizeTarball(t *testing.T) {
	w := NewWorld(t)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	const size = 512<<20 + 4096
	tw.WriteHeader(&tar.Header{Name: "csi9big-1.0.0/Cargo.toml", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(manifestOf("csi9big", "1.0.0")))})
	tw.Write([]byte(manifestOf("csi9big", "1.0.0")))
	tw.WriteHeader(&tar.Header{Name: "csi9big-1.0.0/src/zeros.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
	zero := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zero)) {
		tw.Write(zero[:min(int64(len(zero)), size-n)])
	}
	tw.Close()
	zw.Close()
	big := loopback.CrateSpec{Name: "csi9big", Version: "1.0.0", Raw: buf.Bytes()}
	w.addCrate(big)
	w.Lock()
	plain := w.Cargo(w.Home(), false, []string{"fetch"})
	if plain.Code == 0 || !strings.Contains(plain.Stderr, "maximum limit reached") {
		t.Fatalf("plain cargo unpacked it: %s", plain)
	}
	w.Regdir = w.findRegdir()
	before := w.inodes()
	for run := 0; run < 2; run++ {
		viaShim := w.Cargo(w.Home(), true, []string{"fetch"})
		if viaShim.Code != plain.Code || !strings.Contains(viaShim.Stderr, "maximum limit reached") {
			t.Fatalf("run %d: shim exit %d, plain %d:\n%s", run, viaShim.Code, plain.Code, viaShim.Stderr)
		}
		// cargo's partial unpack (no marker) may go to the trash; the shim
		// itself never unpacks a byte of this tarball.
		if strings.Contains(viaShim.Stderr, "Repairing csi9big") || strings.Contains(viaShim.Stderr, "Extracting csi9big") {
			t.Fatalf("run %d: the shim unpacked the oversize tarball:\n%s", run, viaShim.Stderr)
		}
		if du := dirBytes(filepath.Join(w.Shared, "src", w.Regdir)); du > size {
			t.Errorf("run %d: src holds %d bytes, more than cargo's own partial unpack", run, du)
		}
	}
	w.assertSameInodes(before)
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, _ := d.Info(); fi != nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// The 32 KB Cargo.lock of 8,000 nested inline tables: the shim fails open
// with one warning and cargo reports the file as it would alone.
func TestHostileNestedCargoLock(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	hostile := "version = 3\n[[package]]\nname = \"flat\"\nversion = \"1.0.0\"\nx = " +
		strings.Repeat("{a=", 8000) + "1" + strings.Repeat("}", 8000) + "\n"
	writeFile(t, filepath.Join(w.Work, "Cargo.lock"), hostile)
	before := w.inodes()
	viaShim := w.Cargo(w.Home(), true, []string{"build"})
	writeFile(t, filepath.Join(w.Work, "Cargo.lock"), hostile)
	plain := w.Cargo(w.Home(), false, []string{"build"})
	if viaShim.Code != plain.Code {
		t.Fatalf("shim exit %d, plain cargo %d:\n%s", viaShim.Code, plain.Code, viaShim.Stderr)
	}
	lines := shimLines(viaShim.Stderr)
	if len(lines) != 1 || !strings.Contains(lines[0], "not a Cargo.lock cargo writes") {
		t.Errorf("want one fail-open warning, got %q", lines)
	}
	w.assertSameInodes(before)
}

// Control characters in a Cargo.lock's package names: never a path, never
// printed raw, and the holder still pins the valid crates.
func TestHostileControlCharsInLockNames(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	lockPath := filepath.Join(w.Work, "Cargo.lock")
	lock, _ := os.ReadFile(lockPath)
	src := "registry+https://github.com/rust-lang/crates.io-index"
	for _, name := range []string{`flat\u0000x`, `\u001b]0;pwned\u0007`, `flat\nx`} {
		lock = append(lock, fmt.Sprintf("\n[[package]]\nname = \"%s\"\nversion = \"1.0.0\"\nsource = %q\n", name, src)...)
	}
	// Plain cargo rewrites Cargo.lock: each run gets the hostile one.
	writeFile(t, lockPath, string(lock))
	before := w.inodes()
	viaShim := w.Cargo(w.Home(), true, []string{"build"})
	writeFile(t, lockPath, string(lock))
	plain := w.Cargo(w.Home(), false, []string{"build"})
	if viaShim.Code != plain.Code {
		t.Fatalf("shim exit %d, plain cargo %d:\n%s", viaShim.Code, plain.Code, viaShim.Stderr)
	}
	lines := shimLines(viaShim.Stderr)
	if len(lines) != 3 {
		t.Errorf("want a warning per invalid entry, got %q", lines)
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "\x00\x1b\x07") {
			t.Errorf("control character printed raw: %q", l)
		}
		if strings.Contains(l, "holder") {
			t.Errorf("the holder failed: %q", l)
		}
	}
	if !strings.Contains(viaShim.Stderr, `flat\x00x v1.0.0`) {
		t.Errorf("the NUL is not shown escaped:\n%s", viaShim.Stderr)
	}
	w.assertSameInodes(before)
}

// Without Cargo.lock the whole registry is repaired: one crate whose repair
// fails (here an immutable extraction, which no rename can move) is that
// crate's warning, and the crates after it are still repaired. The
// checksums come from the state records a run through the shim wrote
// (without a trusted checksum nothing is re-extracted: TestTrust*).
func TestNoCargoLockOneFailedRepairDoesNotStopTheOthers(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "fetch")
	stuck := w.Extraction("deep-mods-2.1.0")
	rm(t, filepath.Join(stuck, "src", "outer", "inner", "leaf.rs"))
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	rm(t, filepath.Join(w.Work, "Cargo.lock"))
	if out, err := exec.Command("chattr", "+i", stuck).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", stuck).Run() })
	r := w.Cargo(w.Home(), true, []string{"fetch"})
	if r.Code != 0 {
		t.Fatalf("fetch: %s", r)
	}
	if !strings.Contains(r.Stderr, "Repairing flat v1.0.0") {
		t.Errorf("flat was not repaired after deep-mods failed:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "deep-mods") {
		t.Errorf("no warning names deep-mods:\n%s", r.Stderr)
	}
}
