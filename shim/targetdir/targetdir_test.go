package targetdir

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mk(t testing.TB, p string, age time.Duration) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	os.Chtimes(p, old, old)
	os.Chtimes(filepath.Dir(p), old, old)
}

// a target dir as cargo leaves it, with fingerprints an hour old.
func targetDir(t testing.TB) string {
	d := t.TempDir()
	mk(t, filepath.Join(d, "CACHEDIR.TAG"), 0)
	for _, p := range []string{
		"debug/.fingerprint/flat-0123456789abcdef/lib-flat",
		"debug/.fingerprint/flat-extra-0123456789abcdef/lib-flat_extra",
		"debug/.fingerprint/other-0123456789abcdef/lib-other",
		"debug/deps/libflat-0123456789abcdef.rlib",
		"x86_64-unknown-linux-gnu/release/.fingerprint/flat-fedcba9876543210/lib-flat",
	} {
		mk(t, filepath.Join(d, p), time.Hour)
	}
	mk(t, filepath.Join(d, "debug/.cargo-lock"), 0)
	return d
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func list(rs ...Repair) func() ([]Repair, error) {
	return func() ([]Repair, error) { return rs, nil }
}

// The rule: only the fingerprints of the repaired crate's name that predate
// its repair go, in every profile; nothing else in the dir, and a second
// Sync with the same journal stamp reads no journal at all.
func TestSyncRemovesOnlyStaleFingerprintsOfRepairedCrates(t *testing.T) {
	d := targetDir(t)
	res, err := Sync(d, "s1", list(Repair{Name: "flat", At: time.Now()}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 2 {
		t.Errorf("removed %v, want flat's two fingerprint dirs", res.Removed)
	}
	for _, gone := range []string{"debug/.fingerprint/flat-0123456789abcdef", "x86_64-unknown-linux-gnu/release/.fingerprint/flat-fedcba9876543210"} {
		if exists(filepath.Join(d, gone)) {
			t.Errorf("%s kept", gone)
		}
	}
	for _, kept := range []string{"debug/.fingerprint/flat-extra-0123456789abcdef", "debug/.fingerprint/other-0123456789abcdef", "debug/deps/libflat-0123456789abcdef.rlib"} {
		if !exists(filepath.Join(d, kept)) {
			t.Errorf("%s removed", kept)
		}
	}
	_, err = Sync(d, "s1", func() ([]Repair, error) {
		t.Fatal("journal read although its stamp is the one the dir saw")
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A fingerprint written after the repair (plus the clock slack) is the
// repaired crate's: kept.
func TestSyncKeepsFingerprintsCompiledAfterTheRepair(t *testing.T) {
	d := targetDir(t)
	res, _ := Sync(d, "s1", list(Repair{Name: "flat", At: time.Now().Add(-2*time.Hour - Slack)}))
	if len(res.Removed) != 0 {
		t.Errorf("removed %v compiled after the repair", res.Removed)
	}
}

// Never through a link: a .fingerprint or an entry that is a symlink is not
// followed, and what it points to stays.
func TestSyncFollowsNoLink(t *testing.T) {
	d := targetDir(t)
	outside := t.TempDir()
	mk(t, filepath.Join(outside, "flat-0123456789abcdef/keep"), time.Hour)
	os.RemoveAll(filepath.Join(d, "debug/.fingerprint"))
	if err := os.Symlink(outside, filepath.Join(d, "debug/.fingerprint")); err != nil {
		t.Fatal(err)
	}
	fp := filepath.Join(d, "x86_64-unknown-linux-gnu/release/.fingerprint")
	os.RemoveAll(filepath.Join(fp, "flat-fedcba9876543210"))
	if err := os.Symlink(filepath.Join(outside, "flat-0123456789abcdef"), filepath.Join(fp, "flat-fedcba9876543210")); err != nil {
		t.Fatal(err)
	}
	Sync(d, "s1", list(Repair{Name: "flat", At: time.Now()}))
	if !exists(filepath.Join(outside, "flat-0123456789abcdef/keep")) {
		t.Fatal("removed through a symlink")
	}
}

// A dir cargo did not make is not touched, marker included.
func TestSyncLeavesOtherDirsAlone(t *testing.T) {
	d := targetDir(t)
	os.Remove(filepath.Join(d, "CACHEDIR.TAG"))
	Sync(d, "s1", list(Repair{Name: "flat", At: time.Now()}))
	if !exists(filepath.Join(d, "debug/.fingerprint/flat-0123456789abcdef")) || exists(filepath.Join(d, MarkerName)) {
		t.Fatal("changed a dir without cargo's tag")
	}
}

// A cargo building in a profile holds its lock: that profile is left, and
// the marker not written, so the next run tries again.
func TestSyncSkipsBusyProfile(t *testing.T) {
	d := targetDir(t)
	f, err := os.Open(filepath.Join(d, "debug/.cargo-lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	res, err := Sync(d, "s1", list(Repair{Name: "flat", At: time.Now()}))
	if err != nil || len(res.Busy) != 1 || !exists(filepath.Join(d, "debug/.fingerprint/flat-0123456789abcdef")) || exists(filepath.Join(d, MarkerName)) {
		t.Fatalf("busy profile: %+v %v", res, err)
	}
}

func TestLocatePrecedence(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
		ok   bool
	}{
		{Settings{}, "/ws/target", true},
		{Settings{BuildTargetDir: "b"}, "/cwd/b", true},
		{Settings{TargetDir: "/t", BuildTargetDir: "b"}, "/t", true},
		{Settings{Flag: "f", TargetDir: "/t"}, "/cwd/f", true},
		{Settings{Flag: "f", BuildDir: "/bd"}, "/bd", true},
		{Settings{BuildDir: "{workspace-root}/x"}, "", false},
	} {
		got, ok := Locate(tc.s, "/cwd", "/ws")
		if got != tc.want || ok != tc.ok {
			t.Errorf("Locate(%+v) = %q %v, want %q %v", tc.s, got, ok, tc.want, tc.ok)
		}
	}
}

// The warm path: a target dir whose marker has the journal's stamp.
func BenchmarkSyncWarm(b *testing.B) {
	d := targetDir(b)
	Sync(d, "s1", list())
	for b.Loop() {
		Sync(d, "s1", nil)
	}
}
