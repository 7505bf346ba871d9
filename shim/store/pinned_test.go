package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/events"
	"github.com/cargo-shim/cargo-shim/shim/store/storetest"
	"golang.org/x/sys/unix"
)

// cachedCrate is a registry r holding one crate's tarball, not extracted.
func cachedCrate(t *testing.T, r Registry) Instance {
	t.Helper()
	c := Crate{Name: "flat", Version: "1.0.0"}
	tb := storetest.Files(c.Dir(), map[string]string{"Cargo.toml": "[package]\n", "lib.rs": "pub fn f() {}\n"})
	sum := sha256.Sum256(tb)
	c.Checksum = hex.EncodeToString(sum[:])
	i := Instance{Crate: c, Regdir: "127.0.0.1-7a7a96776db27b19"}
	os.MkdirAll(filepath.Dir(r.Tarball(i)), 0o755)
	os.MkdirAll(filepath.Dir(r.Extraction(i)), 0o755)
	if err := os.WriteFile(r.Tarball(i), tb, 0o644); err != nil {
		t.Fatal(err)
	}
	return i
}

// pinnedCrate is a registry with one extracted crate whose lock a build
// holds shared (released at the end of the test, or by the caller).
func pinnedCrate(t *testing.T) (Registry, Instance, *lockfile.Lock) {
	t.Helper()
	return pinnedCrateIn(t, t.TempDir())
}

func pinnedCrateIn(t *testing.T, root string) (Registry, Instance, *lockfile.Lock) {
	t.Helper()
	r := Registry{Root: root}
	i := cachedCrate(t, r)
	if _, _, err := r.RepairCrate(context.Background(), i, RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	pin, err := lockfile.Try(r.LockPath(i), lockfile.Shared)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pin.Release() })
	return r, i, pin
}

func trashCount(t *testing.T, r Registry) int {
	t.Helper()
	ents, _ := os.ReadDir(r.TrashDir())
	return len(ents)
}

// Rule: a build pinning a crate does not stop its repair when the repair
// is a swap; the old directory, which the build may still read (a build
// script runs in it), survives every emptying of the trash until the pin
// ends. Without waiting, too: a nested shim under that very build repairs.
func TestRepairBesidePinnedBuild(t *testing.T) {
	r, i, pin := pinnedCrate(t)
	// The pinned build's view of the old directory: its working dir.
	old, err := unix.Open(r.Extraction(i), unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(old)
	for round, noWait := range []bool{false, true} {
		os.Remove(filepath.Join(r.Extraction(i), "lib.rs"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		act, f, err := r.RepairCrate(ctx, i, RepairOptions{NoWait: noWait})
		cancel()
		if err != nil || act.Kind != ActReextracted || f.Verdict != Healthy {
			t.Fatalf("round %d: repair beside a pin: %+v, %v, %v", round, act, f.Verdict, err)
		}
		if _, err := os.Stat(filepath.Join(r.Extraction(i), "lib.rs")); err != nil {
			t.Fatalf("round %d: not repaired: %v", round, err)
		}
		if _, err := r.EmptyTrash(0); err != nil {
			t.Fatal(err)
		}
		if n := trashCount(t, r); n != round+1 {
			t.Fatalf("round %d: %d trash entries while the crate is pinned, want %d", round, n, round+1)
		}
	}
	if kept := r.TrashKept(); kept == 0 {
		t.Error("TrashKept is 0 while the crate is pinned: a dry run would promise the kept entries")
	}
	var st unix.Stat_t
	if err := unix.Fstatat(old, "Cargo.toml", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("the pinned build lost its old directory's files: %v", err)
	}
	pin.Release()
	if _, err := r.EmptyTrash(0); err != nil {
		t.Fatal(err)
	}
	if n := trashCount(t, r); n != 0 {
		t.Errorf("%d trash entries left once the pin ended", n)
	}
}

// Rule: a repair that removes (here: a broken extraction with no tarball
// to repair from, moved aside) never happens beside a pin: it waits for the
// exclusive lock, and the pinned directory is untouched meanwhile.
func TestRepairThatRemovesWaitsForPins(t *testing.T) {
	r, i, pin := pinnedCrate(t)
	os.Remove(filepath.Join(r.Extraction(i), "lib.rs"))
	os.Remove(r.Tarball(i))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := r.RepairCrate(ctx, i, RepairOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("repair that removes, beside a pin: %v, want a wait until the deadline", err)
	}
	if _, err := os.Stat(filepath.Join(r.Extraction(i), "Cargo.toml")); err != nil {
		t.Fatalf("the pinned extraction was changed: %v", err)
	}
	if _, _, err := r.RepairCrate(context.Background(), i, RepairOptions{NoWait: true}); !errors.Is(err, ErrInUse) {
		t.Fatalf("NoWait repair that removes, beside a pin: %v, want ErrInUse", err)
	}
	pin.Release()
	act, _, err := r.RepairCrate(context.Background(), i, RepairOptions{})
	if err != nil || act.Kind != ActMovedAside {
		t.Fatalf("once unpinned: %+v, %v", act, err)
	}
}

// Rule: where the filesystem has no RENAME_EXCHANGE (GlusterFS's and NFS's
// clients), a swap would leave a moment with no directory at the path, so a
// repair beside a pin patches the extraction in place: at once, the same
// directory, nothing in the trash. Runs on the first mount of
// CARGO_SHIM_TEST_MULTIHOST (make multihost).
func TestPinnedRepairWithoutExchangePatchesInPlace(t *testing.T) {
	mounts := strings.Fields(os.Getenv("CARGO_SHIM_TEST_MULTIHOST"))
	if len(mounts) == 0 {
		t.Skip("needs a filesystem without RENAME_EXCHANGE: CARGO_SHIM_TEST_MULTIHOST (make multihost)")
	}
	root, err := os.MkdirTemp(mounts[0], "pinned-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	os.Mkdir(filepath.Join(root, "a"), 0o755)
	os.Mkdir(filepath.Join(root, "b"), 0o755)
	if unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "a"), unix.AT_FDCWD, filepath.Join(root, "b"), unix.RENAME_EXCHANGE) == nil {
		t.Skipf("%s has RENAME_EXCHANGE", mounts[0])
	}
	r, i, _ := pinnedCrateIn(t, filepath.Join(root, "registry"))
	var before unix.Stat_t
	unix.Lstat(r.Extraction(i), &before)
	os.Remove(filepath.Join(r.Extraction(i), "lib.rs"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	act, f, err := r.RepairCrate(ctx, i, RepairOptions{})
	if err != nil || act.Kind != ActReextracted || f.Verdict != Healthy {
		t.Fatalf("repair beside a pin without RENAME_EXCHANGE: %+v, %v, %v", act, f.Verdict, err)
	}
	var after unix.Stat_t
	if err := unix.Lstat(r.Extraction(i), &after); err != nil || after.Ino != before.Ino {
		t.Fatalf("the pinned extraction was replaced or moved: %v", err)
	}
	if n := trashCount(t, r); n != 0 {
		t.Errorf("%d trash entries after a repair in place", n)
	}
}

// Rule: nothing another uid plants at the repair lock (a directory, a
// FIFO, a symlink: nothing a lock can be taken on, and gc never clears a
// directory there) makes a repair beside pins fail: it is then at worst
// what it was before the repair lock existed, a wait for the crate's
// exclusive lock, and the repair is made once the pins end.
func TestPlantedRepairLockFallsBackToWaiting(t *testing.T) {
	plants := map[string]func(p string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o777) },
		"fifo":      func(p string) error { return unix.Mkfifo(p, 0o666) },
		"symlink":   func(p string) error { return os.Symlink("/dev/null", p) },
	}
	for kind, plant := range plants {
		t.Run(kind, func(t *testing.T) {
			r, i, pin := pinnedCrate(t)
			os.MkdirAll(filepath.Dir(r.RepairLock()), 0o777)
			if err := plant(r.RepairLock()); err != nil {
				t.Fatal(err)
			}
			os.Lchown(r.RepairLock(), 65534, 65534)
			os.Remove(filepath.Join(r.Extraction(i), "lib.rs"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// The long job ends once the repair says it waits for it.
			act, f, err := r.RepairCrate(ctx, i, RepairOptions{Waiting: func(WaitFor) { pin.Release() }})
			if err != nil || act.Kind != ActReextracted || f.Verdict != Healthy {
				t.Fatalf("repair beside a pin, a %s planted at %s: %+v, %v, %v; want it to wait for the pin and repair", kind, r.RepairLock(), act, f.Verdict, err)
			}
		})
	}
}

// pinTry is an events sink that, when told a trash entry was deleted,
// tries to pin the crate as a build starting then would.
type pinTry struct {
	t    *testing.T
	path string
	err  error
}

func (p *pinTry) Emit(e events.Event) {
	if e.Action != "trash" {
		return
	}
	var lk *lockfile.Lock
	lk, p.err = lockfile.Try(p.path, lockfile.Shared)
	lk.Release()
}

// Rule: emptying the trash never keeps a build from pinning a crate while
// an old directory of it is deleted (a large crate takes seconds): the
// crate's exclusive lock only proves that no build which pinned it before
// the swap is left, and later builds read the extraction, never the trash.
func TestEmptyTrashDoesNotHoldTheCrate(t *testing.T) {
	r, i, pin := pinnedCrate(t)
	os.Remove(filepath.Join(r.Extraction(i), "lib.rs"))
	if act, _, err := r.RepairCrate(context.Background(), i, RepairOptions{NoWait: true}); err != nil || act.Kind != ActReextracted {
		t.Fatalf("repair beside a pin: %+v, %v", act, err)
	}
	pin.Release()
	sink := &pinTry{t: t, path: r.LockPath(i)}
	r.Events = sink
	if _, err := r.EmptyTrash(0); err != nil {
		t.Fatal(err)
	}
	if n := trashCount(t, r); n != 0 {
		t.Fatalf("%d trash entries left once unpinned", n)
	}
	if sink.err != nil {
		t.Errorf("a build pinning the crate while its trash entry was deleted: %v", sink.err)
	}
}
