package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// The drop-in follows cargo's verbosity: -q, --quiet and CARGO_TERM_QUIET
// silence its info lines (repairs included) but not its warnings; -v adds a
// line on what it checked; the build itself passes either way.
func TestDropInQuietAndVerbose(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	lib := filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")
	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{[]string{"-q", "build"}, nil},
		{[]string{"build", "--quiet"}, nil},
		{[]string{"build"}, []string{"CARGO_TERM_QUIET=true"}},
	} {
		if err := os.Remove(lib); err != nil {
			t.Fatal(err)
		}
		r := w.Cargo(home, true, tc.args, tc.env...)
		if r.Code != 0 {
			t.Fatalf("cargo %v %v: %s", tc.env, tc.args, r)
		}
		if strings.Contains(r.Stderr, "Repairing") || strings.Contains(r.Stderr, "cargo-shim") {
			t.Errorf("cargo %v %v printed shim info lines: %q", tc.env, tc.args, r.Stderr)
		}
		if _, err := os.Stat(lib); err != nil {
			t.Errorf("cargo %v %v did not repair lib.rs: %v", tc.env, tc.args, err)
		}
	}
	// Without -q the same repair is said.
	os.Remove(lib)
	if r := w.Cargo(home, true, []string{"build"}); r.Code != 0 || !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs missing)") {
		t.Fatalf("plain build after damage: %s", r)
	}
	// Quiet keeps the warnings that matter.
	r := w.Cargo(home, true, []string{"-q", "build"}, "CARGO_SHIM_VERIFY=bogus")
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning: cargo-shim: CARGO_SHIM_VERIFY") {
		t.Fatalf("quiet run with a bad setting: %s", r)
	}
	r = w.Cargo(home, true, []string{"build", "-v"})
	if r.Code != 0 || !strings.Contains(r.Stderr, "Checked 5 crates of Cargo.lock") {
		t.Fatalf("cargo build -v: %s", r)
	}
	if strings.Contains(w.Cargo(home, true, []string{"build"}).Stderr, "Checked") {
		t.Fatal("the -v line shows without -v")
	}
}

// Stats are written only by runs that did something, and count what they
// did: the warm run leaves the totals file untouched.
func TestStatsRecordOnlyWork(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	totals := filepath.Join(w.Shared, ".cargo-shim", "stats", "totals.json")
	w.MustCargo(home, true, "build") // reads Cargo.lock, writes the plan
	before, err := os.ReadFile(totals)
	if err != nil {
		t.Fatalf("the planning run wrote no stats: %v", err)
	}
	fi, _ := os.Stat(totals)
	w.MustCargo(home, true, "build") // warm: nothing to do
	after, _ := os.ReadFile(totals)
	fi2, _ := os.Stat(totals)
	if string(before) != string(after) || !fi.ModTime().Equal(fi2.ModTime()) {
		t.Fatalf("a warm no-op run wrote stats:\n%s\n%s", before, after)
	}
	os.Remove(filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	w.MustCargo(home, true, "build")
	st := decode[admin.StatsReport](t, w.Admin("stats", "--json"))
	if st.Runs != 2 || st.RunsPlanned != 1 || st.Actions["reextracted"] != 1 || st.FailOpen != 0 {
		t.Fatalf("stats after a planning run and a repair: %+v", st)
	}
	if r := w.Admin("stats", "--zero", "--json"); r.Code != 0 || decode[admin.StatsReport](t, r).Runs != 0 {
		t.Fatalf("stats --zero: %s", r)
	}
}

// gc counts each byte once, the dry run included: what it says it frees is
// what du sees the registry shrink by, with an earlier repair's trash in
// the registry (the trash gc empties is not counted again).
func TestGCBytesMatchDu(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build")
	// An extraction with no trusted tarball: the drop-in moves it to the
	// trash (kept a minute) and cargo downloads it again.
	os.Remove(filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	os.WriteFile(w.Tarball("flat-1.0.0"), []byte("x"), 0o644)
	w.MustCargo(home, true, "build")
	trash, _ := os.ReadDir(filepath.Join(w.Shared, ".cargo-shim", "trash"))
	if len(trash) == 0 {
		t.Fatal("no trash from the repair: the test needs some")
	}
	// The build's lock holder lets go once it sees cargo exit.
	waitFor(t, "the builds' locks to be released", time.Minute, func() bool {
		return len(decode[admin.StatusReport](t, w.Admin("status", "--json")).Locked) == 0
	})
	before := du(t, w.Shared)
	dry := decode[admin.GCReport](t, w.Admin("gc", "--max-age", "0", "--crate-max-age", "0", "--dry-run", "--json"))
	if got := du(t, w.Shared); got != before {
		t.Fatalf("the dry run changed the registry: du %d -> %d", before, got)
	}
	r := w.Admin("gc", "--max-age", "0", "--crate-max-age", "0", "--json")
	rep := decode[admin.GCReport](t, r)
	after := du(t, w.Shared)
	if r.Code != 0 || len(rep.Removed) < len(fixtureCrates) || len(rep.Busy) != 0 || rep.TrashFreedBytes <= 0 {
		t.Fatalf("gc: %s", r)
	}
	if before-after != rep.TotalFreedBytes {
		t.Errorf("du shrank by %d bytes, gc says it freed %d (%d + %d from the trash)", before-after, rep.TotalFreedBytes, rep.FreedBytes, rep.TrashFreedBytes)
	}
	if dry.TotalFreedBytes != rep.TotalFreedBytes || dry.TrashFreedBytes != rep.TrashFreedBytes {
		t.Errorf("dry run says %d (%d from the trash), the real run %d (%d)", dry.TotalFreedBytes, dry.TrashFreedBytes, rep.TotalFreedBytes, rep.TrashFreedBytes)
	}
	t.Logf("du before %d, after %d; gc freed %d = %d + %d from the trash", before, after, rep.TotalFreedBytes, rep.FreedBytes, rep.TrashFreedBytes)
}

// du is the disk usage of dir in bytes, as du(1) counts it.
func du(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatalf("du %s: %v", dir, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
