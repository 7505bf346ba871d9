package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the helper processes: a holder, and a process
// that locks then waits or execs.
func TestMain(m *testing.M) {
	if IsHolder() {
		os.Exit(RunHolder())
	}
	switch os.Getenv("LOCKFILE_HELPER") {
	case "":
		os.Exit(m.Run())
	case "lock":
		helperLock()
	case "hold-exec":
		helperHoldExec()
	case "handoff-exec":
		helperHandOffExec()
	case "lock-no-hold":
		helperLockNoHold()
	case "readonly":
		helperReadOnly()
	case "umask":
		syscall.Umask(0o077)
		l, err := Try(os.Getenv("LOCK_PATH"), Shared)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		l.Release()
		// The raw-descriptor path of sets, too.
		s, err := AcquireSet(context.Background(), []string{os.Getenv("LOCK_PATH") + ".set"}, Shared, Options{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		s.Release()
		os.Exit(0)
	}
	os.Exit(3)
}

// helperLock takes LOCK_PATH in LOCK_MODE, prints "locked", then waits for
// stdin to close.
func helperLock() {
	mode := Shared
	if os.Getenv("LOCK_MODE") == "exclusive" {
		mode = Exclusive
	}
	l, err := Acquire(context.Background(), os.Getenv("LOCK_PATH"), mode, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n')
	l.Release()
	os.Exit(0)
}

// helperHoldExec is the drop-in in miniature: hand LOCK_PATH to a holder,
// then exec a shell that lists its descriptors and waits on stdin.
func helperHoldExec() {
	h := holderWithLock()
	if err := h.Hold(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("holder %d\n", h.Pid())
	err := syscall.Exec("/bin/sh", []string{"sh", "-c", `ls -l /proc/$$/fd; echo listed; read x`}, os.Environ())
	fmt.Println("error", err)
	os.Exit(1)
}

// holderWithLock starts a holder that has LOCK_PATH locked shared.
func holderWithLock() *Holder {
	exe, _ := os.Executable()
	h, err := StartHolder(exe, 1)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := h.Lock([]string{os.Getenv("LOCK_PATH")}, time.Minute, nil); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	return h
}

// helperLockNoHold is a shim that has its holder lock LOCK_PATH, then waits
// on stdin, never calling Hold: the test kills it there.
func helperLockNoHold() {
	holderWithLock()
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(1)
}

type helper struct {
	cmd   *exec.Cmd
	stdin *os.File
	out   *bufio.Reader
}

func startHelper(t *testing.T, kind string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"LOCKFILE_HELPER=" + kind}, env...)...)
	stdinR, stdinW, _ := os.Pipe()
	cmd.Stdin = stdinR
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdinR.Close()
	h := &helper{cmd: cmd, stdin: stdinW, out: bufio.NewReader(outR)}
	t.Cleanup(func() {
		h.stdin.Close()
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	return h
}

func (h *helper) expect(t *testing.T, prefix string) string {
	t.Helper()
	for {
		line, err := h.out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper ended before %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, "error") {
			t.Fatalf("helper: %s", line)
		}
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
}

// mustBlock asserts that f does not return while the conflicting lock is
// held, and returns a function that waits for it once the lock is released.
func mustBlock(t *testing.T, desc string, f func() error) (wait func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		t.Fatalf("%s did not block (returned %v)", desc, err)
	case <-time.After(300 * time.Millisecond):
	}
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%s still blocked after the lock was released", desc)
		}
	}
}

func TestSharedAllowsSharedBlocksExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "locks", "r", "fnv-1.0.7.lock")
	h := startHelper(t, "lock", "LOCK_PATH="+p, "LOCK_MODE=shared")
	h.expect(t, "locked")

	s, err := Try(p, Shared)
	if err != nil {
		t.Fatalf("shared lock beside another process's shared lock: %v", err)
	}
	s.Release()
	if _, err := Try(p, Exclusive); !IsBusy(err) {
		t.Fatalf("exclusive try while shared held elsewhere: got %v, want busy", err)
	}
	wait := mustBlock(t, "exclusive Acquire", func() error {
		l, err := Acquire(context.Background(), p, Exclusive, Options{})
		if err == nil {
			l.Release()
		}
		return err
	})
	h.stdin.Close() // the helper releases and exits
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestExclusiveBlocksShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	h := startHelper(t, "lock", "LOCK_PATH="+p, "LOCK_MODE=exclusive")
	h.expect(t, "locked")
	if _, err := Try(p, Shared); !IsBusy(err) {
		t.Fatalf("shared try under exclusive: got %v, want busy", err)
	}
	// A killed holder releases by dying.
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
	l, err := Try(p, Shared)
	if err != nil {
		t.Fatalf("lock after the holder was killed: %v", err)
	}
	l.Release()
}

func TestAcquireTimeoutAndWaitingMessage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	h := startHelper(t, "lock", "LOCK_PATH="+p, "LOCK_MODE=shared")
	h.expect(t, "locked")
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var waited []string
	_, err := Acquire(ctx, p, Exclusive, Options{Patience: 100 * time.Millisecond, Waiting: func(p string) { waited = append(waited, p) }})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != p {
		t.Fatalf("error %v does not name the lock path", err)
	}
	if len(waited) != 1 || waited[0] != p {
		t.Fatalf("waiting callback: got %q, want once for %s", waited, p)
	}
}

func TestSetOrderAndDedup(t *testing.T) {
	got := SortPaths([]string{"b", "a", "c", "a", "b"})
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("got %v", got)
	}
	dir := t.TempDir()
	s, err := AcquireSet(context.Background(), []string{filepath.Join(dir, "b"), filepath.Join(dir, "a"), filepath.Join(dir, "b")}, Shared, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if n := len(s.Locks()); n != 2 {
		t.Fatalf("set holds %d locks, want 2", n)
	}
	if s.Locks()[0].Path() != filepath.Join(dir, "a") {
		t.Fatalf("first lock %s, want a", s.Locks()[0].Path())
	}
}

func TestLockFileWorldLockableDespiteUmask(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "x.lock")
	h := startHelper(t, "umask", "LOCK_PATH="+p)
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	for _, lp := range []string{p, p + ".set"} {
		fi, err := os.Stat(lp)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o666 {
			t.Fatalf("%s mode: got %04o, want 0666", filepath.Base(lp), got)
		}
	}
	di, _ := os.Stat(filepath.Dir(p))
	if got := di.Mode().Perm(); got != 0o777 {
		t.Fatalf("lock dir mode: got %04o, want 0777", got)
	}
}

func TestHolderKeepsLocksThroughExecUntilExit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fnv-1.0.7.lock")
	h := startHelper(t, "hold-exec", "LOCK_PATH="+p)
	h.expect(t, "holder")
	var listing strings.Builder
	for {
		line, err := h.out.ReadString('\n')
		if err != nil {
			t.Fatalf("exec'd program ended early: %v", err)
		}
		if strings.TrimSpace(line) == "listed" {
			break
		}
		listing.WriteString(line)
	}
	if strings.Contains(listing.String(), ".lock") {
		t.Fatalf("the exec'd program inherited a lock descriptor:\n%s", listing.String())
	}
	// The shell (same pid as the locker) runs: the lock is held by the holder.
	if _, err := Try(p, Exclusive); !IsBusy(err) {
		t.Fatalf("exclusive try while the exec'd program runs: got %v, want busy", err)
	}
	// SIGKILL the exec'd program: the holder notices and releases.
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
	waitFree(t, p, "the program was killed")
}

func TestHolderReleaseFreesLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	exe, _ := os.Executable()
	h, err := StartHolder(exe, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Lock([]string{p}, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Try(p, Exclusive); !IsBusy(err) {
		t.Fatalf("holder does not hold: %v", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	l, err := Try(p, Exclusive)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l.Release()
	h.Stop()
}

func testExe(tb testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return exe
}

// A killed holder releases its locks by dying, while cargo goes on.
func TestKilledHolderReleases(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	h := startHelper(t, "hold-exec", "LOCK_PATH="+p)
	var pid int
	if _, err := fmt.Sscanf(h.expect(t, "holder"), "holder %d", &pid); err != nil {
		t.Fatal(err)
	}
	h.expect(t, "listed")
	if _, err := Try(p, Exclusive); !IsBusy(err) {
		t.Fatalf("before the kill: %v", err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFree(t, p, "its holder was killed")
	if err := h.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the exec'd program died with its holder: %v", err)
	}
}

// A shim killed after its holder locked and before Hold: the holder sees
// its command pipe close and exits, which releases the locks.
func TestHolderDiesWithShimBeforeHold(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	h := startHelper(t, "lock-no-hold", "LOCK_PATH="+p)
	h.expect(t, "locked")
	if _, err := Try(p, Exclusive); !IsBusy(err) {
		t.Fatalf("the holder does not hold: %v", err)
	}
	h.cmd.Process.Kill()
	h.cmd.Wait()
	// Bounded only so that a holder that outlives its shim fails the test
	// instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Acquire(ctx, p, Exclusive, Options{})
	if err != nil {
		t.Fatalf("the holder outlived its killed shim: %v", err)
	}
	l.Release()
}

// Rule: Downgrade turns an exclusive lock into a shared one on the same
// descriptor, so the holder keeps a lock throughout: after it, other
// shared locks are taken and an exclusive one is still refused.
func TestDowngradeKeepsTheLockShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	l, err := Try(p, Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := Try(p, Shared); !IsBusy(err) {
		t.Fatalf("shared lock beside an exclusive one: %v", err)
	}
	if err := l.Downgrade(); err != nil {
		t.Fatal(err)
	}
	if l.Mode() != Shared {
		t.Fatalf("mode after Downgrade: %v", l.Mode())
	}
	s, err := Try(p, Shared)
	if err != nil {
		t.Fatalf("shared lock beside a downgraded one: %v", err)
	}
	s.Release()
	if _, err := Try(p, Exclusive); !IsBusy(err) {
		t.Fatalf("exclusive lock beside a downgraded one: %v", err)
	}
}
