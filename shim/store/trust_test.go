package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The trust rule (trust.go), one test per way round it. Each plays what
// another uid can write: a tarball, a plan record, an index-cache entry.

// rewritten is fnv extracted from its genuine tarball, whose cache file is
// then rewritten with other code (a new build.rs, another lib.rs).
func rewritten(t *testing.T) (Registry, Instance, *Manifest) {
	t.Helper()
	reg, i, m := extracted(t, []entry{{name: "fnv-1.0.7/Cargo.toml", body: "[package]\n"}, {name: "fnv-1.0.7/src/lib.rs", body: "pub fn genuine() {}"}})
	writeTarball(t, filepath.Join(reg.Root, "cache", "r"), fnv, []entry{{name: "fnv-1.0.7/Cargo.toml", body: "[package]\n"},
		{name: "fnv-1.0.7/build.rs", body: "fn main() { evil() }"}, {name: "fnv-1.0.7/src/lib.rs", body: "pub fn evil() {}"}})
	return reg, i, m
}

// assertGenuine: the extraction still holds the genuine lib.rs and no build.rs.
func assertGenuine(t *testing.T, reg Registry, i Instance) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(reg.Extraction(i), "src", "lib.rs"))
	if err != nil || string(got) != "pub fn genuine() {}" {
		t.Fatalf("lib.rs is now %q (%v): the rewritten tarball was unpacked", got, err)
	}
	if _, err := os.Lstat(filepath.Join(reg.Extraction(i), "build.rs")); err == nil {
		t.Fatal("build.rs of the rewritten tarball appeared")
	}
}

// Without a trusted checksum (no Cargo.lock, `cargo-shim repair` over the
// registry), a tarball that differs from its extraction is reported with
// the path, and the extraction is left as plain cargo would compile it.
func TestNoTrustedChecksumNeverReextracts(t *testing.T) {
	for _, withRecord := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted-record=%v", withRecord), func(t *testing.T) {
			reg, i, m := rewritten(t)
			if withRecord {
				// Root's own record of the genuine tarball: the checksum it
				// names is believed, and the rewritten tarball mismatches.
				if err := reg.recordState(i, m); err != nil {
					t.Fatal(err)
				}
			}
			act, f, err := reg.RepairCrate(context.Background(), i, RepairOptions{})
			if err != nil || act.Verb != "" {
				t.Fatalf("repair: %+v %v", act, err)
			}
			assertGenuine(t, reg, i)
			if !withRecord && (f.Unverified == "" || !strings.HasSuffix(f.Path, "build.rs")) {
				t.Errorf("difference not reported with its path: %q %q", f.Unverified, f.Path)
			}
			if withRecord && f.Mismatch == "" {
				t.Error("the mismatch with the recorded checksum was not reported")
			}
			if got := reg.RecordedSHA256(i); withRecord && got != m.SHA256 || !withRecord && got != "" {
				t.Errorf("recorded checksum %q: the rewritten tarball was laundered", got)
			}
		})
	}
}

// Empty and malformed checksums name nothing, wherever they come from.
func TestMalformedChecksumsAreRefused(t *testing.T) {
	for _, sum := range []string{"", "ab", strings.Repeat("AB", 32), strings.Repeat("a", 63), strings.Repeat("a", 65), strings.Repeat("z", 64)} {
		if validChecksum(sum) {
			t.Errorf("%q taken for a checksum", sum)
		}
		reg, i, _ := rewritten(t)
		i.Checksum = sum
		if act, _, err := reg.RepairCrate(context.Background(), i, RepairOptions{}); err != nil || act.Verb != "" {
			t.Errorf("checksum %q: %+v %v", sum, act, err)
		}
		assertGenuine(t, reg, i)
	}
	if !validChecksum(strings.Repeat("0123456789abcdef", 4)) {
		t.Error("a sha256 refused")
	}
}

// A plan from a hint (cargo install's index cache) carries no checksum,
// whatever its bytes say, and never reads a workspace's plan record.
func TestHintPlanCarriesNoChecksum(t *testing.T) {
	reg, i, _ := rewritten(t)
	os.MkdirAll(filepath.Join(reg.Root, "index", "r"), 0o755)
	sum := strings.Repeat("ab", 32)
	lock := []byte("version = 4\n\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://example.invalid/index\"\nchecksum = \"" + sum + "\"\n")
	p, err := reg.LoadPlanFrom(lock, "install", Hint)
	if err != nil || len(p.instances) != 1 || p.instances[0].Checksum != "" {
		t.Fatalf("hint plan: %+v %v", p, err)
	}
	w, _ := reg.LoadPlan(lock, "Cargo.lock")
	if err := reg.RecordPlan(w); err != nil {
		t.Fatal(err)
	}
	if p, _ := reg.LoadPlanFrom(lock, "install", Hint); p.Cached() || p.instances[0].Checksum != "" {
		t.Fatal("a hint read the workspace's plan record")
	}
	findings, _ := reg.CheckPlan(p, CheckOptions{})
	if findings[0].Verdict == Broken {
		t.Fatalf("%v %q", findings[0].Verdict, findings[0].Reason)
	}
	assertGenuine(t, reg, i)
}

// A plan record another uid could have written is not read: it would name
// the checksums (an empty one made root re-extract a rewritten tarball).
func TestPlanRecordOfAnotherUidIsNotRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a record to another uid")
	}
	reg, _, _ := rewritten(t)
	os.MkdirAll(filepath.Join(reg.Root, "index", "r"), 0o755)
	lock := []byte("version = 4\n\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://example.invalid/index\"\nchecksum = \"" + strings.Repeat("ab", 32) + "\"\n")
	p, _ := reg.LoadPlan(lock, "Cargo.lock")
	// The forger's record: the same plan with no checksum.
	p.crates[0].Checksum = ""
	p.instances[0].Checksum = ""
	if err := reg.savePlan(p); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(reg.PlanDir(), p.key)
	os.Lchown(rec, 65534, 65534)
	if got, _ := reg.LoadPlan(lock, "Cargo.lock"); got.Cached() || got.instances[0].Checksum == "" {
		t.Fatalf("another uid's plan record was read: cached=%v checksum=%q", got.Cached(), got.instances[0].Checksum)
	}
	os.Lchown(rec, 0, 0)
	if got, _ := reg.LoadPlan(lock, "Cargo.lock"); !got.Cached() {
		t.Fatal("root's own record was not read")
	}
}

// A plan record is no larger than its Cargo.lock allows: 20,000 crates for
// a one-crate lock is refused (the run would take 20,000 locks).
func TestPlanRecordBoundedByItsCargoLock(t *testing.T) {
	reg, _, _ := rewritten(t)
	os.MkdirAll(filepath.Join(reg.Root, "index", "r"), 0o755)
	lock := []byte("version = 4\n\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://example.invalid/index\"\n")
	p, _ := reg.LoadPlan(lock, "Cargo.lock")
	for k := 0; k < 20000; k++ {
		c := Crate{Name: fmt.Sprintf("cold%d", k), Version: "1.0.0"}
		p.crates = append(p.crates, c)
		p.cold = append(p.cold, c)
	}
	if err := reg.savePlan(p); err != nil {
		t.Fatal(err)
	}
	got, _ := reg.LoadPlan(lock, "Cargo.lock")
	if n := len(reg.LockPaths(got)); got.Cached() || n > 2 {
		t.Fatalf("the oversized record was used: cached=%v, %d locks", got.Cached(), n)
	}
	// A regdir with no index behind it pins nothing.
	p, _ = reg.LoadPlan(lock, "Cargo.lock")
	p.regdirs = append(p.regdirs, "ghost")
	p.indexed = append(p.indexed, "ghost")
	reg.savePlan(p)
	if got, _ := reg.LoadPlan(lock, "Cargo.lock"); got.Cached() {
		t.Fatal("a record naming a regdir with no index was used")
	}
}

// chownTree gives every file and directory under p to uid.
func chownTree(p string, uid int) {
	filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(q, uid, uid)
		}
		return err
	})
}

// What root compiles is what the checksum names: an extraction another uid
// owns is compared by content before root trusts it, a file rewritten in
// place (same size, directory stamps unmoved) or a file added is found on
// the next root run, and the repair unpacks the verified tarball.
func TestRootComparesExposedExtraction(t *testing.T) {
	if !rootRun {
		t.Skip("the comparison is a root run's")
	}
	for _, tc := range []struct {
		name, reason string
		change       func(dir string)
	}{
		{"rewritten-in-place", "src/lib.rs differs from the tarball", func(dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "src", "lib.rs"), os.O_WRONLY, 0)
			f.WriteAt([]byte("pub fn ev1l() {}"), 0)
			f.Close()
		}},
		{"file-added", "build.rs is not in the tarball", func(dir string) {
			os.WriteFile(filepath.Join(dir, "build.rs"), []byte("fn main() {}"), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, i, m := extracted(t, []entry{{name: "fnv-1.0.7/Cargo.toml", body: "[package]\n"}, {name: "fnv-1.0.7/src/lib.rs", body: "pub fn genuine() {}"}})
			i.Checksum = m.SHA256
			chownTree(reg.Extraction(i), 65534)
			time.Sleep(2 * racyWindow)
			if f := reg.Check(i, Fast, false); f.Verdict != Healthy || f.exposure == nil {
				t.Fatalf("first look: %v %q exposure=%v", f.Verdict, f.Reason, f.exposure != nil)
			} else if err := reg.RecordIfVerified(f); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * racyWindow)
			if f := reg.Check(i, Fast, false); f.Verdict != Healthy || f.fresh {
				t.Fatalf("unmoved: want healthy from root's record, got %v fresh=%v", f.Verdict, f.fresh)
			}
			tc.change(reg.Extraction(i))
			if f := reg.Check(i, Fast, false); f.Verdict != Broken || !strings.HasPrefix(f.Reason, tc.reason) {
				t.Fatalf("after the change: %v %q, want broken: %s", f.Verdict, f.Reason, tc.reason)
			}
			if act, _, err := reg.RepairCrate(context.Background(), i, RepairOptions{}); err != nil || act.Kind != ActReextracted {
				t.Fatalf("repair: %+v %v", act, err)
			}
			assertGenuine(t, reg, i)
		})
	}
}
