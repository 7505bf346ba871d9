package admin

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
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
