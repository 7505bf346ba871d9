package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
)

// Attacks on the shim's bookkeeping beside the locks: the repair journal
// and the holder notes. The attacker (uid 65534) writes the registry; root
// runs through the drop-in with a real cargo.

// csiToucherEnv makes this test binary, copied where uid 65534 may run
// it, the toucher of TestHostileRepairJournalTouched.
const csiToucherEnv = "CSI_JOURNAL_TOUCHER"

func init() {
	if dir := os.Getenv(csiToucherEnv); dir != "" {
		for k := 0; k < 4; k++ {
			go func() {
				for {
					now := time.Now()
					os.Chtimes(dir, now, now)
				}
			}()
		}
		select {}
	}
}

// startToucher starts, as uid 65534, four loops setting dir's times to now
// without pause; the returned func stops them.
func (w *World) startToucher(dir string) func() {
	w.t.Helper()
	return startAttacker(w.t, w.Root, "csi-toucher", csiToucherEnv+"="+dir)
}

// journalGuard is how long a root build may take while the attacker keeps
// the repair journal fresh before the test calls it hung: generous (a warm
// build ends in seconds), not a speed assertion. A run that waits the
// journal out for good never ends.
const journalGuard = openLockTimeout + 2*time.Minute

// Rule: whatever another uid does to the repair journal directory can make
// a run rebuild crates, never wait beyond a bound while it holds every
// crate's lock. The attacker owns `.cargo-shim/repaired` and touches it
// every few milliseconds, so its stamp is always within the racy window.
func TestHostileRepairJournalTouched(t *testing.T) {
	w := hostileWorld(t)
	journal := filepath.Join(w.Shared, ".cargo-shim", "repaired")
	os.RemoveAll(journal) // root forgets its own: the attacker makes it
	w.mustAttack(`mkdir -m 777 -p .cargo-shim; mkdir -m 755 .cargo-shim/repaired`, "")
	stop := w.startToucher(journal)
	for n := 0; n < 3; n++ {
		r := w.runWithin(journalGuard, w.Work, w.Home(), []string{"build"}, "CARGO_SHIM_LOG=debug")
		t.Log(r)
		if r.Code != 0 {
			t.Fatalf("build %d as root while uid %d touches the journal: %s", n, attacker, r)
		}
	}
	stop()
}

// Rule: holder notes are made, listed and removed only inside the
// registry. The attacker replaces `.cargo-shim/holders` by a symlink to a
// directory outside holding a file named like a dead holder's note; root
// runs a build long enough to publish its note and, meanwhile, a build that
// waits for its locks (and so lists the notes, removing dead ones). Nothing
// in the decoy may be created or removed.
func TestHostileHoldersDirSymlink(t *testing.T) {
	w := hostileWorld(t)
	decoy, _ := w.decoy()
	const planted = "1@decoyhost+0+1+build.note"
	writeFile(t, filepath.Join(decoy, planted), "")
	snap, err := safefstest.Snapshot(decoy)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(w.Shared, ".cargo-shim", "holders")) // root forgets its own
	w.mustAttack(`mkdir -m 777 -p .cargo-shim; ln -s "$DECOY" .cargo-shim/holders`, decoy)
	waiter := w.Workspace(1)
	held, open := w.StartHeldBuild()
	defer open() // a failing test does not leave the build held
	// The held build's holder publishes its note once cargo has run 2 s.
	published := func() bool {
		ents, _ := os.ReadDir(decoy)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".note") && e.Name() != planted {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) && !published() {
		time.Sleep(100 * time.Millisecond)
	}
	// A truncated tarball of a crate the held build pins: the waiter's
	// repair removes it, so it waits for the held build (a repair by swap,
	// as of a missing build.rs, no longer does).
	truncate(t, w.Tarball("autobuild-0.2.0"), 100)
	r := w.runWithin(journalGuard, waiter, w.Home(), []string{"build"}, "CARGO_SHIM_LOCK_TIMEOUT=5s")
	if !strings.Contains(r.Stderr, "Blocking") {
		t.Errorf("the second build did not wait for the held one (the notes were not listed): %s", r)
	}
	open()
	held.Wait()
	safefstest.Unchanged(t.Errorf, decoy, snap)
}
