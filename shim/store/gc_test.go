package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"golang.org/x/sys/unix"
)

// A FIFO or a symlink planted where a lock file belongs turns every build of
// that crate into an unprotected one; gc removes it (never what it points
// to), and keeps a lock file a build holds.
func TestSweepRemovesUnlockableLockFiles(t *testing.T) {
	r := Registry{Root: t.TempDir()}
	held := Instance{Crate: Crate{Name: "held", Version: "1.0.0"}, Regdir: "rd"}
	lk, err := lockfile.Try(r.LockPath(held), lockfile.Shared)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	base, _ := r.SweepOrphans(true)
	dir := filepath.Dir(r.LockPath(held))
	fifo := filepath.Join(dir, "fifo-1.0.0.lock")
	if err := unix.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link-1.0.0.lock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// Where every home's cargo lock points, too.
	pc := r.DownloadLock()
	if err := unix.Mkfifo(pc, 0o666); err != nil {
		t.Fatal(err)
	}
	// And at a registry-wide lock: a FIFO at the repair lock would stop
	// every repair beside a pin.
	if err := unix.Mkfifo(r.RepairLock(), 0o666); err != nil {
		t.Fatal(err)
	}
	dry, _ := r.SweepOrphans(true)
	if dry.LockFiles != base.LockFiles+4 {
		t.Errorf("dry run counts %d lock files, want %d and the FIFO, the symlink, the package-cache FIFO and the repair-lock FIFO", dry.LockFiles, base.LockFiles)
	}
	if _, err := os.Lstat(fifo); err != nil {
		t.Fatalf("dry run removed the FIFO: %v", err)
	}
	if _, err := r.SweepOrphans(false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, link, pc, r.RepairLock()} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
		t.Errorf("the symlink's target changed: %q, %v", b, err)
	}
	if _, err := os.Lstat(r.LockPath(held)); err != nil {
		t.Errorf("the held lock file went: %v", err)
	}
}

// Rule: a directory another uid made at a registry-wide lock (the repair
// lock, before any repair beside a pin created the file) is removed by gc
// like a FIFO there: else repairs beside pins stay off for good (they wait
// for the exclusive lock), and builds on a new registry lock nothing.
// Nothing it holds is followed; a dry run only counts it.
func TestSweepRemovesDirectoryAtRegistryLock(t *testing.T) {
	r := Registry{Root: t.TempDir()}
	target := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{r.RepairLock(), r.ColdLock()} {
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Symlink(target, filepath.Join(p, "sub", "x.lock"))
		os.Chown(p, 65534, 65534)
	}
	dry, _ := r.SweepOrphans(true)
	if _, err := os.Lstat(r.RepairLock()); err != nil || dry.LockFiles != 2 {
		t.Fatalf("dry run: %d lock files counted, the directory: %v; want 2, kept", dry.LockFiles, err)
	}
	if _, err := r.SweepOrphans(false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{r.RepairLock(), r.ColdLock()} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the directory at %s is still there", p)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
		t.Errorf("what a link in it named changed: %q, %v", b, err)
	}
}
