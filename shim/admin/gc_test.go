package admin

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// writeCrate puts an extraction and a tarball of name-1.0.0 in regdir r.
func writeCrate(t *testing.T, reg store.Registry, name string) store.Instance {
	t.Helper()
	i := store.Instance{Crate: store.Crate{Name: name, Version: "1.0.0"}, Regdir: "r"}
	os.MkdirAll(filepath.Join(reg.Extraction(i), "src"), 0o755)
	os.WriteFile(filepath.Join(reg.Extraction(i), "src", "lib.rs"), []byte("pub fn f() {}\n"), 0o644)
	os.WriteFile(filepath.Join(reg.Extraction(i), ".cargo-ok"), []byte(`{"v":1}`), 0o644)
	os.MkdirAll(filepath.Dir(reg.Tarball(i)), 0o755)
	if err := os.WriteFile(reg.Tarball(i), []byte("a .crate"), 0o644); err != nil {
		t.Fatal(err)
	}
	return i
}

// gc keeps a crate a build holds, whatever its age; a dry run reports what
// the real run then does, and removes nothing (not even a lock file made).
func TestGCKeepsHeldCrateAndDryRunRemovesNothing(t *testing.T) {
	reg := store.Registry{Root: t.TempDir()}
	held := writeCrate(t, reg, "held")
	free := writeCrate(t, reg, "free")
	l, err := lockfile.Acquire(context.Background(), reg.LockPath(held), lockfile.Shared, lockfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	o := GCOptions{MaxAge: 0, CrateMaxAge: 0, Tarballs: true, DryRun: true}
	now := time.Now().Add(time.Minute)
	dry, err := GC(reg, o, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{reg.Extraction(free), reg.Tarball(free), reg.Extraction(held)} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("the dry run removed %s", p)
		}
	}
	if _, err := os.Lstat(reg.LockPath(free)); err == nil {
		t.Fatal("the dry run created a lock file")
	}
	o.DryRun = false
	real, err := GC(reg, o, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(real.Busy) != 1 || real.Busy[0].Crate != "held" || len(real.Removed) != 1 || real.Removed[0].What != "extraction+tarball" || real.Removed[0].Crate != "free" {
		t.Fatalf("gc: removed %+v, busy %+v; want free removed, held kept", real.Removed, real.Busy)
	}
	if _, err := os.Lstat(reg.Extraction(held)); err != nil {
		t.Fatal("gc removed the extraction a build holds")
	}
	if _, err := os.Lstat(reg.Extraction(free)); err == nil {
		t.Fatal("gc kept an unused extraction")
	}
	dry.DryRun, dry.TrashFreedBytes, real.TrashFreedBytes = false, 0, 0
	if !reflect.DeepEqual(dry, real) {
		t.Fatalf("the dry run said\n%+v\nthe real run did\n%+v", dry, real)
	}
}

// Rule: gc's report says what it did to the trash, not what it expected
// at its start: a trash entry a build pinned when gc began, but deleted
// because the build ended meanwhile (gc over a large registry takes
// minutes), is counted freed, not "kept for builds still using it".
func TestGCReportsTrashKeptAtTheEnd(t *testing.T) {
	reg := store.Registry{Root: t.TempDir()}
	held := writeCrate(t, reg, "held")
	pin, err := lockfile.Acquire(context.Background(), reg.LockPath(held), lockfile.Shared, lockfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	// What a repair beside the pin left: the old directory.
	old := filepath.Join(reg.TrashDir(), "r.held-1.0.0."+strconv.FormatInt(time.Now().UnixNano(), 10)+".1")
	os.MkdirAll(filepath.Join(old, "src"), 0o755)
	if err := os.WriteFile(filepath.Join(old, "src", "lib.rs"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	size := reg.DiskUsage(old)
	beforeEmptyTrash = func() { pin.Release() }
	defer func() { beforeEmptyTrash = nil }()
	rep, err := GC(reg, GCOptions{MaxAge: 24 * time.Hour, CrateMaxAge: 24 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); err == nil {
		t.Fatal("gc kept the trash entry of a build that had ended")
	}
	if rep.TrashKeptBytes != 0 || rep.TrashFreedBytes < size {
		t.Errorf("gc deleted a %d-byte trash entry, and reports %d bytes kept, %d freed", size, rep.TrashKeptBytes, rep.TrashFreedBytes)
	}
	// And a build that pins the crate while gc runs keeps its entry.
	os.MkdirAll(filepath.Join(old, "src"), 0o755)
	os.WriteFile(filepath.Join(old, "src", "lib.rs"), make([]byte, 64<<10), 0o644)
	beforeEmptyTrash = func() {
		if pin, err = lockfile.Try(reg.LockPath(held), lockfile.Shared); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err = GC(reg, GCOptions{MaxAge: 24 * time.Hour, CrateMaxAge: 24 * time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); err != nil {
		t.Fatal("gc deleted the trash entry of a pinned crate")
	}
	if rep.TrashKeptBytes != size || rep.TrashFreedBytes != 0 {
		t.Errorf("gc kept a %d-byte trash entry for a build, and reports %d bytes kept, %d freed", size, rep.TrashKeptBytes, rep.TrashFreedBytes)
	}
}
