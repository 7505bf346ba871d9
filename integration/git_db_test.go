package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// gitBound kills a build that has not ended after it: cargo 1.95 with
// net.git-fetch-with-cli spins without end on some damaged dbs. A build
// killed so counts as failed; nothing is asserted about time.
const gitBound = 90 * time.Second

// boundedWait waits for p, killing its process group after gitBound.
func boundedWait(p *loopback.Proc) (loopback.Result, bool) {
	timer := time.AfterFunc(gitBound, p.KillGroup)
	r := p.Wait()
	return r, !timer.Stop()
}

// DB is the shared db of dependency name.
func (w *GitWorld) DB(name string) string {
	w.t.Helper()
	m, _ := filepath.Glob(filepath.Join(w.Shared, "db", name+"-*"))
	if len(m) != 1 {
		w.t.Fatalf("dbs of %s: %v", name, m)
	}
	return m[0]
}

// loosen turns the packs of db into loose objects (as a db written by many
// small fetches, or by git's own unpack limit, is).
func (w *GitWorld) loosen(db string) error {
	packs, _ := filepath.Glob(filepath.Join(db, "objects", "pack", "*.pack"))
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, f := range []string{p, strings.TrimSuffix(p, ".pack") + ".idx"} {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
		cmd := exec.Command("git", "--git-dir="+db, "unpack-objects", "-q")
		cmd.Env, cmd.Stdin = w.gitEnv, strings.NewReader(string(data))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("unpack-objects: %v: %s", err, out)
		}
	}
	return nil
}

// packed repacks db into one pack (a db fetched in one go, as cargo's
// first fetch makes it; a small fetch by the git CLI leaves loose objects).
func (w *GitWorld) packed(db string) string {
	cmd := exec.Command("git", "--git-dir="+db, "repack", "-q", "-a", "-d")
	cmd.Env = w.gitEnv
	// A db already damaged does not repack: it is left as it is (the
	// caller's mustBeDamaged says whether the damage is there). Loose
	// objects a repack leaves (git keeps some) are removed: the pack is
	// then the only copy.
	if cmd.Run() == nil {
		m, _ := filepath.Glob(filepath.Join(db, "objects", "??"))
		for _, d := range m {
			os.RemoveAll(d)
		}
	}
	return filepath.Join(db, "objects", "pack", "*.pack")
}

// gitDBDamages are damage kinds of a db (gbranch's) that leave its checkout
// as it is: cargo then finds the db does not hold the locked commit and
// fetches into it, deleting and re-creating it (libgit2) or failing or
// spinning on it (net.git-fetch-with-cli).
var gitDBDamages = []struct {
	name string
	do   func(w *GitWorld, db string) error
}{
	{"pack truncated", func(w *GitWorld, db string) error {
		return forEachGlob(w.packed(db), func(p string) error { return os.Truncate(p, 100) })
	}},
	{"pack removed, idx kept", func(w *GitWorld, db string) error {
		return forEachGlob(w.packed(db), os.Remove)
	}},
	{"HEAD removed", func(w *GitWorld, db string) error { return removeIfThere(filepath.Join(db, "HEAD")) }},
	{"objects/ removed", func(w *GitWorld, db string) error { return os.RemoveAll(filepath.Join(db, "objects")) }},
	{"loose objects truncated", func(w *GitWorld, db string) error {
		if err := w.loosen(db); err != nil {
			return err
		}
		return forEachGlob(filepath.Join(db, "objects", "??", "*"), func(p string) error { return os.Truncate(p, 10) })
	}},
	{"pack truncated, checkout removed", func(w *GitWorld, db string) error {
		if err := os.RemoveAll(w.Checkout("gbranch")); err != nil {
			return err
		}
		return forEachGlob(w.packed(db), func(p string) error { return os.Truncate(p, 100) })
	}},
}

// mustBeDamaged fails the test unless git finds db damaged: a damage that
// did not take would make the shim's pass prove nothing.
func (w *GitWorld) mustBeDamaged(db string) {
	w.t.Helper()
	cmd := exec.Command("git", "--git-dir="+db, "fsck", "--connectivity-only", "--no-dangling", "--no-progress")
	cmd.Env = w.gitEnv
	if out, err := cmd.CombinedOutput(); err == nil {
		ls, _ := exec.Command("find", db, "-path", "*/objects/*").CombinedOutput()
		w.t.Fatalf("%s is not damaged: %s\n%s", db, out, ls)
	}
}

func forEachGlob(pattern string, do func(string) error) error {
	m, _ := filepath.Glob(pattern)
	for _, p := range m {
		if err := do(p); err != nil {
			return err
		}
	}
	return nil
}

// Rule: a db damaged so that it no longer resolves the locked commit (a
// truncated or missing pack, truncated loose objects, HEAD or objects/
// gone) is rebuilt by the shim before cargo runs, under the source's
// exclusive locks, fetched into a directory of its own and swapped in:
// every build passes, with libgit2 and with net.git-fetch-with-cli (where
// cargo 1.95 does not re-create the db, and spins on truncated loose
// objects). Plain cargo on the same damage is measured in the same run,
// each build bounded by gitBound.
func TestGitDamagedDBRebuilt(t *testing.T) {
	for _, cli := range []bool{false, true} {
		w := NewGitWorld(t)
		if cli {
			w.Env = append(w.Env, "CARGO_NET_GIT_FETCH_WITH_CLI=true")
		}
		home, work := w.Home(), w.Workspace()
		if r := w.Build(work, home, true).Wait(); r.Code != 0 {
			t.Fatalf("warm-up: %s", r)
		}
		plainFailed, plainHung, shimFailed := 0, 0, 0
		for _, d := range gitDBDamages {
			if err := d.do(w, w.DB("gbranch")); err != nil {
				t.Fatalf("%s: %v", d.name, err)
			}
			w.mustBeDamaged(w.DB("gbranch"))
			plain, hung := boundedWait(w.Build(work, home, false))
			if plain.Code != 0 {
				plainFailed++
			}
			if hung {
				plainHung++
			}
			// Whatever plain cargo left, a build through the shim passes;
			// then the same damage again, for the shim alone.
			if r, _ := boundedWait(w.Build(work, home, true)); r.Code != 0 {
				t.Errorf("cli=%v %s: the build after plain cargo's failed: %s", cli, d.name, r)
			}
			if err := d.do(w, w.DB("gbranch")); err != nil {
				t.Fatalf("%s: %v", d.name, err)
			}
			w.mustBeDamaged(w.DB("gbranch"))
			r, _ := boundedWait(w.Build(work, home, true))
			if r.Code != 0 {
				shimFailed++
				t.Errorf("cli=%v %s: build through the shim failed: %s", cli, d.name, r)
			} else if !strings.Contains(r.Stderr, "Rebuilt git db ") || !strings.Contains(r.Stderr, "/git/db/"+filepath.Base(w.DB("gbranch"))) {
				t.Errorf("cli=%v %s: the shim did not rebuild the db: %s", cli, d.name, r.Stderr)
			}
			t.Logf("cli=%v %s: plain cargo exit %d hung %v (%s); shim exit %d", cli, d.name, plain.Code, hung, lastLines(plain.Stderr, 1), r.Code)
		}
		t.Logf("damaged db, git-fetch-with-cli=%v: plain cargo failed %d of %d (%d killed after %v), through the shim %d of %d",
			cli, plainFailed, len(gitDBDamages), plainHung, gitBound, shimFailed, len(gitDBDamages))
	}
}

// Rule: --offline never rebuilds a db (that needs the network): a damaged
// one is left exactly as it is, and the warning names the source and the
// db's path.
func TestGitDamagedDBOffline(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	db := w.DB("gbranch")
	if err := gitDBDamages[0].do(w, db); err != nil {
		t.Fatal(err)
	}
	plain, _ := boundedWait(w.Build(work, home, false, "--offline"))
	if err := gitDBDamages[0].do(w, db); err != nil {
		t.Fatal(err)
	}
	w.mustBeDamaged(db)
	before := inodeOf(t, db)
	r, _ := boundedWait(w.Build(work, home, true, "--offline"))
	t.Logf("offline, damaged db: plain cargo exit %d (%s); shim exit %d", plain.Code, lastLines(plain.Stderr, 1), r.Code)
	if !strings.Contains(r.Stderr, "gbranch") || !strings.Contains(r.Stderr, "/git/db/"+filepath.Base(db)) || !strings.Contains(r.Stderr, "--offline") {
		t.Errorf("the shim did not name the damaged db: %s", r.Stderr)
	}
	if inodeOf(t, db) != before || strings.Contains(r.Stderr, "Rebuilt git db") {
		t.Errorf("an --offline run replaced the db")
	}
	packs, _ := filepath.Glob(filepath.Join(db, "objects", "pack", "*.pack"))
	for _, p := range packs {
		if fi, err := os.Stat(p); err != nil || fi.Size() != 100 {
			t.Errorf("the damaged pack %s was changed", p)
		}
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Advance commits to dependency name's repository and moves work's
// Cargo.lock to the new commit (cargo update with a home of its own).
func (w *GitWorld) Advance(work, name string) {
	w.t.Helper()
	dir := filepath.Join(w.Root, "srv", name)
	writeFile(w.t, filepath.Join(dir, "later.txt"), "later\n")
	w.git(dir, "add", "-A")
	w.git(dir, "commit", "-qm", "later")
	home := filepath.Join(w.Root, "advance-home")
	if r := loopback.Start(realCargo, work, loopback.CargoEnv(home, ""), []string{"update", "-p", name}).Wait(); r.Code != 0 {
		w.t.Fatalf("cargo update -p %s: %s", name, r)
	}
}

// Rule: a db is never replaced unless it is proven damaged: one that
// resolves the locked commit is kept whatever else is odd in it (a corrupt
// object nothing names, a ref naming nothing), and a readable db that
// merely lacks a newly locked commit is fetched into by cargo, not
// replaced.
func TestGitDBKeptUnlessProvenDamaged(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	db := w.DB("gbranch")
	writeFile(t, filepath.Join(db, "objects", "ab", "cdef0123456789abcdef0123456789abcdef01"), "not zlib")
	writeFile(t, filepath.Join(db, "refs", "remotes", "origin", "odd"), "0123456789abcdef0123456789abcdef01234567\n")
	before := inodeOf(t, db)
	if r := w.Build(work, home, true).Wait(); r.Code != 0 || inodeOf(t, db) != before {
		t.Fatalf("odd objects beside the commit: the db was replaced or the build failed: %s", r)
	}
	os.Remove(filepath.Join(db, "refs", "remotes", "origin", "odd"))
	w.Advance(work, "gbranch")
	r := w.Build(work, home, true).Wait()
	if r.Code != 0 {
		t.Fatalf("build after a new commit: %s", r)
	}
	if inodeOf(t, db) != before || strings.Contains(r.Stderr, "Rebuilt git db") {
		t.Errorf("a readable db lacking a new commit was replaced: %s", r.Stderr)
	}
}

// Rule: runners killed while the shim rebuilds a damaged db, or while
// cargo then builds, leave nothing that fails the next runs: every rerun
// passes. Plain cargo on the same damage and kills is measured.
func TestGitDBRebuildKilledThenRerun(t *testing.T) {
	measure := func(viaShim bool) int {
		w := NewGitWorld(t)
		home := w.Home()
		work := w.Workspace()
		if r := w.Build(work, home, true).Wait(); r.Code != 0 {
			t.Fatalf("warm-up: %s", r)
		}
		failed := 0
		for _, delay := range []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond} {
			if err := gitDBDamages[0].do(w, w.DB("gbranch")); err != nil {
				t.Fatal(err)
			}
			p := w.Build(work, home, viaShim)
			time.Sleep(delay)
			p.KillGroup()
			p.Wait()
			if r, _ := boundedWait(w.Build(work, home, viaShim)); r.Code != 0 {
				failed++
				t.Logf("shim=%v: rerun after a kill at %v failed: %s", viaShim, delay, lastLines(r.Stderr, 3))
			}
		}
		return failed
	}
	plain, shim := measure(false), measure(true)
	t.Logf("damaged db, killed at 20 to 500 ms, rerun: plain cargo %d of 4 failed, through the shim %d of 4", plain, shim)
	if shim != 0 {
		t.Errorf("%d reruns through the shim failed", shim)
	}
}

// Rule: runners that find one damaged db at the same moment rebuild it
// once, under its exclusive lock, and all pass; plain cargo, whose runners
// each delete and re-clone the db with no lock across them, is measured on
// the same damage in the same run.
func TestGitDamagedDBConcurrentRunners(t *testing.T) {
	const runners, rounds = 4, 2
	kinds := []int{0, 2} // pack truncated, HEAD removed
	plain, shim, total := 0, 0, 0
	for _, viaShim := range []bool{false, true} {
		w := NewGitWorld(t)
		if r := w.Build(w.Workspace(), w.Home(), true).Wait(); r.Code != 0 {
			t.Fatalf("warm-up: %s", r)
		}
		for round := 0; round < rounds; round++ {
			for _, k := range kinds {
				for _, name := range []string{"gbranch", "gtag", "gsub"} {
					if err := gitDBDamages[k].do(w, w.DB(name)); err != nil {
						t.Fatal(err)
					}
					w.mustBeDamaged(w.DB(name))
				}
				failed := w.concurrently(runners, viaShim)
				if viaShim {
					shim += failed
					total += runners
				} else {
					plain += failed
				}
				// Whatever plain cargo left is healed through the shim.
				if r := w.Build(w.Workspace(), w.Home(), true).Wait(); r.Code != 0 {
					t.Errorf("shim=%v: the build after the round failed: %s", viaShim, r)
				}
			}
		}
	}
	t.Logf("damaged dbs, %d runners at once x %d: plain cargo failed %d of %d, through the shim %d of %d", runners, rounds*len(kinds), plain, total, shim, total)
	if shim != 0 {
		t.Errorf("%d builds through the shim failed on damaged dbs", shim)
	}
}

// Rule: the admin command reports a damaged db as such (code damaged-db,
// the db's path) and changes nothing on verify; repair rebuilds it only
// when the URL is known (--lockfile), under its lock, then the checkout;
// without --lockfile the db is left and reported.
func TestGitAdminRepairsDamagedDB(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	if err := os.MkdirAll(filepath.Join(home, "registry", ".cargo-shim"), 0o755); err != nil {
		t.Fatal(err)
	}
	admin := func(args ...string) loopback.Result {
		return loopback.Start(filepath.Join(binDir, "cargo-shim"), work, loopback.CargoEnv(home, ""), args).Wait()
	}
	db := w.DB("gbranch")
	if err := gitDBDamages[2].do(w, db); err != nil { // HEAD removed
		t.Fatal(err)
	}
	os.Remove(filepath.Join(w.Checkout("gbranch"), "src/lib.rs"))
	lock := filepath.Join(work, "Cargo.lock")
	before := inodeOf(t, db)
	if r := admin("verify", "--lockfile", lock, "--json"); r.Code != 1 || !strings.Contains(r.Stdout, `"damaged-db"`) {
		t.Fatalf("verify of a damaged db: %s", r)
	}
	if r := admin("repair"); r.Code != 1 || inodeOf(t, db) != before {
		t.Fatalf("repair without --lockfile (URL unknown) must leave the db and say so: %s", r)
	}
	r := admin("repair", "--lockfile", lock)
	if r.Code != 0 || !strings.Contains(r.Stdout, "git db") || inodeOf(t, db) == before {
		t.Fatalf("repair --lockfile of a damaged db: %s", r)
	}
	t.Logf("repair:\n%s", r.Stdout)
	if r := w.Build(work, home, false, "--offline").Wait(); r.Code != 0 {
		t.Fatalf("plain cargo --offline after repair: %s", r)
	}
}
