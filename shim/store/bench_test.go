package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/store/storetest"
)

// benchRegistry builds a warm registry of n crates shaped like a real one
// (10-59 files in up to seven directories each), with recorded state and a
// plan record, and returns it with its Cargo.lock bytes.
func benchRegistry(b testing.TB, n int) (Registry, []byte) {
	b.Helper()
	return benchRegistryOf(b, n, false)
}

// benchRegistryOf is benchRegistry; exposed gives every extraction to
// another uid (65534) before it is checked: what a root run then compares
// by content once and lstats file by file on every warm run (exposed.go).
func benchRegistryOf(b testing.TB, n int, exposed bool) (Registry, []byte) {
	b.Helper()
	root := b.TempDir()
	reg := Registry{Root: root}
	const regdir = "127.0.0.1-0123456789abcdef"
	for _, sub := range []string{"index", "cache", "src"} {
		os.MkdirAll(filepath.Join(root, sub, regdir), 0o755)
	}
	var lock strings.Builder
	lock.WriteString("version = 4\n")
	for k := 0; k < n; k++ {
		c := Crate{Name: fmt.Sprintf("crate-%05d", k), Version: "1.0.0"}
		tb := storetest.Files(c.Dir(), storetest.Shaped(c.Name, k))
		sum := sha256.Sum256(tb)
		c.Checksum = hex.EncodeToString(sum[:])
		i := Instance{Crate: c, Regdir: regdir}
		os.WriteFile(reg.Tarball(i), tb, 0o644)
		if _, err := extract(reg.Tarball(i), c, reg.Extraction(i)); err != nil {
			b.Fatal(err)
		}
		if exposed {
			chownTree(reg.Extraction(i), 65534)
		}
		fmt.Fprintf(&lock, "\n[[package]]\nname = %q\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = %q\n", c.Name, c.Checksum)
	}
	time.Sleep(2 * racyWindow)
	data := []byte(lock.String())
	p, err := reg.buildPlan(data, "Cargo.lock", Trusted)
	if err != nil {
		b.Fatal(err)
	}
	for _, i := range p.instances {
		if f := reg.Check(i, Fast, false); f.Verdict != Healthy {
			b.Fatalf("%s: %v", i, f.Reason)
		} else if err := reg.RecordIfVerified(f); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * racyWindow)
	if err := reg.savePlanFromStates(p); err != nil {
		b.Fatal(err)
	}
	return reg, data
}

func BenchmarkLoadPlan400(b *testing.B) {
	reg, data := benchRegistry(b, 400)
	b.ResetTimer()
	for b.Loop() {
		if _, ok := reg.loadPlan(data, Trusted); !ok {
			b.Fatal("plan record not used")
		}
	}
}

func BenchmarkParseCargoLock400(b *testing.B) {
	_, data := benchRegistry(b, 400)
	b.ResetTimer()
	for b.Loop() {
		if _, err := ParseCargoLock(data, "Cargo.lock"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPlanWarm400(b *testing.B) {
	reg, data := benchRegistry(b, 400)
	p, ok := reg.loadPlan(data, Trusted)
	if !ok {
		b.Fatal("no plan record")
	}
	b.ResetTimer()
	for b.Loop() {
		if _, fresh := reg.CheckPlan(p, CheckOptions{}); fresh {
			b.Fatal("warm check fell back to a full check")
		}
	}
}

// BenchmarkCheckPlanWarm400Exposed is BenchmarkCheckPlanWarm400 as root
// when another uid owns every extraction: each file's stamps are lstat'd
// against root's record, no content is read (nothing moved).
func BenchmarkCheckPlanWarm400Exposed(b *testing.B) {
	if !rootRun {
		b.Skip("the comparison is a root run's")
	}
	reg, data := benchRegistryOf(b, 400, true)
	p, ok := reg.loadPlan(data, Trusted)
	if !ok || len(p.viaState) != 400 {
		b.Fatal("no plan record, or not through the state records")
	}
	b.ResetTimer()
	for b.Loop() {
		if _, fresh := reg.CheckPlan(p, CheckOptions{}); fresh {
			b.Fatal("warm check fell back to a full check")
		}
	}
}

func BenchmarkFastCheckOneCrate(b *testing.B) {
	reg, data := benchRegistry(b, 1)
	p, _ := reg.loadPlan(data, Trusted)
	i := p.instances[0]
	s := p.stamps[i]
	b.ResetTimer()
	for b.Loop() {
		if _, sure := reg.fastCheck(i, s, Fast); !sure {
			b.Fatal("not sure")
		}
	}
}

func BenchmarkCheckPlanWarm400Serial(b *testing.B) {
	reg, data := benchRegistry(b, 400)
	p, _ := reg.loadPlan(data, Trusted)
	b.ResetTimer()
	for b.Loop() {
		for _, i := range p.instances {
			if _, sure := reg.fastCheck(i, p.stamps[i], Fast); !sure {
				b.Fatal("not sure")
			}
		}
	}
}

func BenchmarkParsePlan400(b *testing.B) {
	reg, data := benchRegistry(b, 400)
	rec, err := os.ReadFile(filepath.Join(reg.PlanDir(), planKey(data)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := parsePlan(rec); err != nil {
			b.Fatal(err)
		}
	}
}
