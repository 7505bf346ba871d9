package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
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
