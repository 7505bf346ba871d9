package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/admin"
	"golang.org/x/sys/unix"
)

// longMain is the fixture app, whose program (cargo run) and test (cargo
// test) wait for a gate: a long job that keeps its crates pinned. It gives
// up after 10 minutes, far past any build it waits for.
const longMain = `fn main() {
    let v = flat::flat() + deep_mods::deep() + pmacro::answer!();
    println!("built={} named={} sum={}", autobuild::built(), namedbuild::named(), v);
    wait_gate();
}

fn wait_gate() {
    let gate = std::env::var("SHIM_TEST_GATE").unwrap();
    std::fs::write(format!("{}/started", gate), "").unwrap();
    for _ in 0..6000 {
        if std::path::Path::new(&format!("{}/go", gate)).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the gate never opened");
}

#[test]
fn long() {
    wait_gate();
}
`

// Rule: a long job (a cargo run or cargo test whose program runs on)
// pins its crates for its whole run, but never stops another runner from
// getting a crate of it repaired. A build in another home that finds the
// crate damaged gets it repaired and passes while the long job still runs,
// without waiting for it, as does cargo-shim repair; the long job passes
// too, and its old copy of the crate stays in the trash until it ends.
// With repairs waiting for the exclusive lock (0.3's rule) the build
// waits, times out and fails as plain cargo does.
func TestLongJobDoesNotBlockRepair(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	exchanges := hasExchange(t, w.Shared)
	long := w.Workspace(1)
	writeFile(t, filepath.Join(long, "src", "main.rs"), longMain)
	for n, job := range []string{"run", "test"} {
		gate := filepath.Join(w.Root, "gate-"+job)
		os.MkdirAll(gate, 0o755)
		held := w.Start(long, w.Home(), true, []string{job}, "SHIM_TEST_GATE="+gate)
		waitFor(t, "cargo "+job+"'s program to start", 3*time.Minute, func() bool {
			_, err := os.Stat(filepath.Join(gate, "started"))
			return err == nil
		})
		lib := filepath.Join(w.Extraction("deep-mods-2.1.0"), "src", "lib.rs")
		dirIno := inode(t, w.Extraction("deep-mods-2.1.0"))
		rm(t, lib)
		t0 := time.Now()
		// A timeout far below the long job's: waiting for it would fail.
		r := w.Cargo(w.Home(), true, []string{"build"}, "CARGO_SHIM_LOCK_TIMEOUT=30s")
		t.Logf("cargo %s running: the other runner's build took %s", job, time.Since(t0).Round(time.Millisecond))
		if r.Code != 0 || !strings.Contains(r.Stderr, "Repairing deep-mods") || strings.Contains(r.Stderr, "Blocking") {
			t.Fatalf("build beside a long cargo %s, its crate damaged: want repaired at once and passing: %s", job, r)
		}
		rm(t, lib)
		if r := w.Admin("repair"); r.Code != 0 || !strings.Contains(r.Stdout, "Repaired deep-mods") {
			t.Fatalf("cargo-shim repair beside a long cargo %s: %s", job, r)
		}
		rep := decode[admin.GCReport](t, w.Admin("gc", "--max-age", "30d", "--json"))
		switch {
		case !exchanges:
			// Patched in place (GlusterFS, NFS): nothing went to the trash.
			if trashEntries(t, w) != 0 || inode(t, w.Extraction("deep-mods-2.1.0")) != dirIno {
				t.Errorf("cargo %s: without RENAME_EXCHANGE the repair must patch the pinned extraction in place", job)
			}
		case rep.TrashKeptBytes == 0 || trashEntries(t, w) < 2:
			t.Errorf("gc while cargo %s pins the crate: kept %d bytes of trash, %d entries left; want the old copies kept", job, rep.TrashKeptBytes, trashEntries(t, w))
		}
		os.WriteFile(filepath.Join(gate, "go"), nil, 0o644)
		if r := held.Wait(); r.Code != 0 || (job == "run" && !strings.Contains(r.Stdout, loopback.WantApp)) {
			t.Fatalf("the long cargo %s (round %d): %s", job, n, r)
		}
		w.Admin("gc", "--max-age", "30d")
		if left := trashEntries(t, w); left != 0 {
			t.Errorf("after cargo %s ended, gc left %d trash entries", job, left)
		}
	}
	w.AssertHealthy()
}

func trashEntries(t *testing.T, w *World) int {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(w.Shared, ".cargo-shim", "trash"))
	return len(ents)
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// hasExchange reports whether dir's filesystem swaps two directories
// atomically (renameat2 RENAME_EXCHANGE).
func hasExchange(t *testing.T, dir string) bool {
	t.Helper()
	a, b := filepath.Join(dir, ".xchg-a"), filepath.Join(dir, ".xchg-b")
	os.Mkdir(a, 0o755)
	os.Mkdir(b, 0o755)
	defer os.Remove(a)
	defer os.Remove(b)
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) == nil
}

// Rule: what uid 65534 plants at the repair lock before any repair beside
// a pin made it (a directory, which gc never clears) never makes root's
// repair beside a pin fail: root waits for the pin to end, as it did
// before the repair lock existed, then repairs and builds.
func TestHostileRepairLockPlanted(t *testing.T) {
	w := hostileWorld(t)
	w.MustCargo(w.Home(), true, "build") // root makes .cargo-shim/locks, sticky
	w.mustAttack(`mkdir .cargo-shim/locks/repair.lock`, "")
	pin, err := lockfile.Try(filepath.Join(w.Shared, ".cargo-shim", "locks", w.Regdir, "deep-mods-2.1.0.lock"), lockfile.Shared)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	rm(t, filepath.Join(w.Extraction("deep-mods-2.1.0"), "src", "lib.rs"))
	cmd := loopback.Command(filepath.Join(binDir, "cargo"), w.Work, w.Env(w.Home(), true, "CARGO_SHIM_LOCK_TIMEOUT=5m"), []string{"build"})
	// The long job ends once the build says it waits for it.
	out, err := releaseWhen(t, cmd, pin, func(line string) bool {
		return strings.HasPrefix(strings.TrimSpace(line), "Blocking waiting for lock on crate deep-mods")
	})
	if err != nil || !strings.Contains(out, "Repairing deep-mods") {
		t.Fatalf("root's build beside a pin, a directory planted at the repair lock: %v; want it to wait for the pin and repair:\n%s", err, out)
	}
}

// Rule: on a group-shared registry a member's build repairs root's
// extraction beside root's pinned build by the swap, without waiting; the
// old directory (root's) waits in the trash, or set aside in its regdir,
// through the member's and root's gc while the pin lasts, and gc empties it
// after. The group can still write everything, and every extraction is
// valid.
func TestMixedUidsRepairBesideRootsPin(t *testing.T) {
	x := newMixed(t, true)
	x.rootBuilds()
	mHome, mWork := x.memberHome(x.m, x.Shared), x.memberWorkspace(x.m)
	pin, err := lockfile.Try(filepath.Join(x.Shared, ".cargo-shim", "locks", x.Regdir, "flat-1.0.0.lock"), lockfile.Shared)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	old := x.Extraction("flat-1.0.0")
	oldDir, err := os.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	defer oldDir.Close()
	rm(t, filepath.Join(old, "lib.rs"))
	r := x.CargoAs(x.m, mWork, mHome, true, []string{"build"}, "CARGO_SHIM_LOCK_TIMEOUT=30s")
	if r.Code != 0 || !strings.Contains(r.Stderr, "Repairing flat") || strings.Contains(r.Stderr, "Blocking") {
		t.Fatalf("the member's build beside root's pin: %s", r)
	}
	for _, gc := range []func() Result{
		func() Result { return x.AdminAs(x.m, mHome, "gc", "--max-age", "30d") },
		func() Result { return x.Admin("gc", "--max-age", "30d") },
	} {
		if r := gc(); r.Code != 0 {
			t.Fatalf("gc while root's pin lasts: %s", r)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(int(oldDir.Fd()), "Cargo.toml", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("gc while root's pin lasts deleted what its old directory held: %v", err)
		}
	}
	pin.Release()
	if r := x.Admin("gc", "--max-age", "30d", "--json"); r.Code != 0 {
		t.Fatalf("gc after the pin: %s", r)
	}
	if n := trashEntries(t, x.World); n != 0 {
		t.Errorf("gc after the pin left %d trash entries", n)
	}
	x.assertGroupWritable()
	x.AssertHealthy()
}
