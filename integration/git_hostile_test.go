package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
	"golang.org/x/sys/unix"
)

// gitSwapperEnv makes this test binary, copied where uid 65534 may run it,
// the swapper of TestGitHostileCollectSwap instead of the tests.
const gitSwapperEnv = "CARGO_SHIM_GIT_SWAPPER"

func init() {
	if spec := os.Getenv(gitSwapperEnv); spec != "" {
		f := strings.Split(spec, "\n")
		os.Exit(gitSwap(f[0], f[1], f[2]))
	}
}

// gitSwap waits for the first open of lock (root's gc taking the checkout's
// lock) and then exchanges the names a and b (renameat2 RENAME_EXCHANGE):
// the attacker's checkouts/<ident> and its symlink to a directory outside.
func gitSwap(lock, a, b string) int {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return 2
	}
	if _, err := unix.InotifyAddWatch(fd, lock, unix.IN_OPEN); err != nil {
		return 3
	}
	fmt.Println("ready")
	buf := make([]byte, 4096)
	if _, err := unix.Read(fd, buf); err != nil {
		return 4
	}
	if unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) != nil {
		return 5
	}
	return 0
}

// gitHostile is a warm GitWorld whose shared git/ directories are root's,
// mode 01777, as a fleet shares them with a less-trusted uid, and whose
// path uid 65534 may walk. It returns a runner home and a workspace.
func gitHostile(t *testing.T) (*GitWorld, string, string) {
	w, home, work := NewWarmGitWorld(t)
	// The admin command works on a registry; git/ beside it is covered too.
	if err := os.MkdirAll(filepath.Join(home, "registry", ".cargo-shim"), 0o755); err != nil {
		t.Fatal(err)
	}
	for d := w.Root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	for _, d := range []string{"", "checkouts", ".cargo-shim", ".cargo-shim/locks", ".cargo-shim/locks/checkouts", ".cargo-shim/state"} {
		p := filepath.Join(w.Shared, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o777|os.ModeSticky)
	}
	return w, home, work
}

// gitAttack runs script with sh as uid 65534 in the shared git/, with
// $DECOY set.
func (w *GitWorld) gitAttack(script, decoy string) {
	w.t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = w.Shared
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "DECOY=" + decoy}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attacker, Gid: attacker}}
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("attacker (uid %d): %v: %s", attacker, err, out)
	}
}

// gitDecoy is a root-owned 0700 directory outside git/ holding files (each
// path given, backdated 60 days) only root could have made, with its
// snapshot.
func (w *GitWorld) gitDecoy(files ...string) (string, safefstest.Tree) {
	w.t.Helper()
	d := filepath.Join(w.Root, "victim")
	if err := os.Mkdir(d, 0o700); err != nil {
		w.t.Fatal(err)
	}
	for _, f := range files {
		writeFile(w.t, filepath.Join(d, f), "root's\n")
	}
	old := time.Now().Add(-60 * 24 * time.Hour)
	filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	snap, err := safefstest.Snapshot(d)
	if err != nil {
		w.t.Fatal(err)
	}
	return d, snap
}

func (w *GitWorld) admin(home, work string, args ...string) loopback.Result {
	return loopback.Start(filepath.Join(binDir, "cargo-shim"), work, loopback.CargoEnv(home, ""), args).Wait()
}

const evilIdent, evilCommit = "evil-0000000000000000", "cafe1234cafe1234cafe1234cafe1234cafe1234"

// Rule: root's gc removes nothing outside git/, whatever another uid swaps
// under it: a checkout goes to the trash by renameat between descriptors
// held from git/ down (no symlink resolved), checked to be the inode found,
// and is removed beneath the trash's descriptor. The attacker owns
// checkouts/<ident> with an old checkout (20,000 files to widen the
// window) and, the moment root's gc opens that checkout's lock,
// exchanges <ident> with its symlink to root's 0700 directory holding a
// directory of the checkout's name.
func TestGitHostileCollectSwap(t *testing.T) {
	w, home, work := gitHostile(t)
	decoy, snap := w.gitDecoy("cafe1234/data")
	w.gitAttack(`co=checkouts/`+evilIdent+`/cafe1234
		mkdir -p $co; git init -q $co; echo `+evilCommit+` > $co/.git/HEAD
		(cd $co && seq 1 20000 | sed 's/^/f/' | xargs touch)
		touch -d '60 days ago' $co/.cargo-ok
		mkdir -p .cargo-shim/locks/checkouts/`+evilIdent+`
		touch -d '60 days ago' .cargo-shim/locks/checkouts/`+evilIdent+`/`+evilCommit+`.lock
		ln -s "$DECOY" checkouts/link`, decoy)
	swapper := w.startSwapper(filepath.Join(w.Shared, ".cargo-shim/locks/checkouts", evilIdent, evilCommit+".lock"),
		filepath.Join(w.Shared, "checkouts", evilIdent), filepath.Join(w.Shared, "checkouts", "link"))
	r := w.admin(home, work, "gc", "--max-age", "30d")
	t.Logf("gc as root: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	if err := swapper.Wait(); err != nil {
		t.Fatalf("the swap did not happen (the test proves nothing): %v", err)
	}
	safefstest.Unchanged(t.Errorf, decoy, snap)
}

// startSwapper starts gitSwap as uid 65534 and returns once it watches.
func (w *GitWorld) startSwapper(lock, a, b string) *exec.Cmd {
	w.t.Helper()
	cmd := attackerCmd(w.t, w.Root, "git-swapper", gitSwapperEnv+"="+lock+"\n"+a+"\n"+b)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		w.t.Fatalf("swapper did not start: %q %v", line, err)
	}
	return cmd
}

// Rule: gc's sweep of killed repairs' temporary directories follows no
// symlink: checkouts/link, another uid's symlink to root's 0700 directory
// holding an old .cargo-shim-tmp-* directory, leaves that directory as it is.
func TestGitHostileLeftoversLink(t *testing.T) {
	w, home, work := gitHostile(t)
	decoy, snap := w.gitDecoy(".cargo-shim-tmp-cafe1234.1.1/data")
	w.gitAttack(`ln -s "$DECOY" checkouts/link`, decoy)
	r := w.admin(home, work, "gc", "--max-age", "30d")
	t.Logf("gc as root: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	safefstest.Unchanged(t.Errorf, decoy, snap)
}

// Rule: root writes and removes a checkout's stamp record only beneath
// git/'s descriptor: another uid's state/<ident>, a symlink to root's 0700
// directory outside, gets no file created, replaced or removed there by
// `cargo-shim verify` (which records the stamps of every checkout it finds
// healthy), repair, or gc (which forgets a removed checkout's record).
func TestGitHostileStateLink(t *testing.T) {
	w, home, work := gitHostile(t)
	state := filepath.Join(w.Shared, ".cargo-shim", "state")
	// Files in root's directory named as the records are (by commit):
	// what a removal through the link would take.
	records, _ := filepath.Glob(filepath.Join(state, "*", "*"))
	names := []string{"keep"}
	for _, r := range records {
		names = append(names, filepath.Base(r))
	}
	if len(records) == 0 {
		t.Fatal("the warm-up build recorded no stamps")
	}
	decoy, snap := w.gitDecoy(names...)
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o777|os.ModeSticky)
	w.gitAttack(`for d in checkouts/*; do ln -s "$DECOY" .cargo-shim/state/$(basename $d); done`, decoy)
	for _, args := range [][]string{{"verify"}, {"repair"}, {"gc", "--max-age", "0"}} {
		r := w.admin(home, work, args...)
		t.Logf("%s as root: exit %d\n%s%s", args[0], r.Code, r.Stdout, r.Stderr)
		safefstest.Unchanged(func(f string, a ...any) { t.Errorf(args[0]+": "+f, a...) }, decoy, snap)
	}
	if r := w.Build(work, home, false).Wait(); r.Code != 0 {
		t.Fatalf("plain cargo afterwards: %s", r)
	}
}

// Rule: root's repair writes a rebuilt checkout only into a directory it
// made itself (0700, O_EXCL, in git/) and swaps it in between held
// descriptors; it never writes through another uid's checkouts/<ident>. The
// attacker re-creates gbranch's checkouts/<ident> (gone, as after a gc)
// with a broken checkout and, the moment root's repair first reads the
// checkout's db (naming what it found), exchanges <ident> with its symlink
// to root's 0700 directory holding a broken directory of the checkout's
// name.
func TestGitHostileRepairSwap(t *testing.T) {
	w, home, work := gitHostile(t)
	co := w.Checkout("gbranch")
	ident, short := filepath.Base(filepath.Dir(co)), filepath.Base(co)
	if err := os.RemoveAll(filepath.Dir(co)); err != nil {
		t.Fatal(err)
	}
	decoy, snap := w.gitDecoy(short + "/junk")
	w.gitAttack(`mkdir -p checkouts/`+ident+`/`+short+`; echo broken > checkouts/`+ident+`/`+short+`/junk
		ln -s "$DECOY" checkouts/link`, decoy)
	swapper := w.startSwapper(filepath.Join(w.Shared, "db", ident, "HEAD"), filepath.Join(w.Shared, "checkouts", ident), filepath.Join(w.Shared, "checkouts", "link"))
	r := w.admin(home, work, "repair")
	t.Logf("repair as root: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	if err := swapper.Wait(); err != nil {
		t.Fatalf("the swap did not happen (the test proves nothing): %v", err)
	}
	safefstest.Unchanged(t.Errorf, decoy, snap)
}
