package lockfile

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperHandOffExec is the drop-in's hand-off in miniature: the lock on
// LOCK_PATH (and LOCK_MORE more locks) taken in this process and handed to a
// holder queued before it has started, then exec of HANDOFF_EXEC at once,
// without waiting for the holder's answer.
func helperHandOffExec() {
	exe, _ := os.Executable()
	paths := []string{os.Getenv("LOCK_PATH")}
	var more int
	fmt.Sscan(os.Getenv("LOCK_MORE"), &more)
	for k := 0; k < more; k++ {
		paths = append(paths, fmt.Sprintf("%s.%d", paths[0], k))
	}
	h, err := NewHolder(exe, len(paths))
	if err == nil {
		err = h.HandOff(paths, time.Minute, nil)
	}
	if err == nil {
		err = h.Start()
	}
	if err == nil {
		err = h.Hold()
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("holder %d\n", h.Pid())
	err = syscall.Exec("/bin/sh", []string{"sh", "-c", os.Getenv("HANDOFF_EXEC")}, os.Environ())
	fmt.Println("error", err)
	os.Exit(1)
}

// waitFree waits until path can be locked exclusively, failing the test
// when it cannot within 10 s.
func waitFree(t *testing.T, path, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := Try(path, Exclusive)
		if err == nil {
			l.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock still held 10s after %s: %v", why, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Rule: a lock the shim takes itself and hands to its holder is held from
// the moment it was taken until the program the shim execs has exited, even
// though the shim execs without waiting for the holder (which then answers
// into a closed pipe), and the exec'd program inherits no lock descriptor.
// Many locks: several batches, sent from several goroutines.
func TestHandedOffLocksHeldThroughExecUntilExit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fnv-1.0.7.lock")
	h := startHelper(t, "handoff-exec", "LOCK_PATH="+p, "LOCK_MORE=99",
		"HANDOFF_EXEC=ls -l /proc/$$/fd; echo listed; read x")
	h.expect(t, "holder")
	listing := readUntil(t, h.out, "listed")
	if strings.Contains(listing, ".lock") {
		t.Fatalf("the exec'd program inherited a lock descriptor:\n%s", listing)
	}
	// Long after the holder's answer went to the closed pipe.
	time.Sleep(500 * time.Millisecond)
	for _, q := range []string{p, p + ".0", p + ".98"} {
		if _, err := Try(q, Exclusive); !IsBusy(err) {
			t.Fatalf("%s while the exec'd program runs: got %v, want busy", filepath.Base(q), err)
		}
	}
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
	waitFree(t, p, "the exec'd program was killed")
	waitFree(t, p+".98", "the exec'd program was killed")
}

// Rule: when the exec'd program has exited before the holder has even
// started, the holder lets the handed-off locks go at once: it was
// reparented, and waiting for its new parent would hold them for ever.
func TestHandedOffLocksFreedWhenCargoEndsFirst(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	for round := 0; round < 5; round++ {
		h := startHelper(t, "handoff-exec", "LOCK_PATH="+p, "HANDOFF_EXEC=exit 0")
		h.expect(t, "holder")
		h.cmd.Wait()
		waitFree(t, p, fmt.Sprintf("the exec'd program exited (round %d)", round))
	}
}

// A lock busy in this process's first pass is left to the holder, which
// waits for it; HandOff then waits for the holder's answer.
func TestHandOffLeavesBusyLocksToTheHolder(t *testing.T) {
	dir := t.TempDir()
	free, busy := filepath.Join(dir, "a.lock"), filepath.Join(dir, "b.lock")
	other := startHelper(t, "lock", "LOCK_PATH="+busy, "LOCK_MODE=exclusive")
	other.expect(t, "locked")
	h, err := NewHolder(testExe(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- h.Start() }()
	wait := mustBlock(t, "HandOff with a lock held exclusively elsewhere", func() error {
		return h.HandOff([]string{free, busy}, time.Minute, nil)
	})
	other.stdin.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{free, busy} {
		if _, err := Try(q, Exclusive); !IsBusy(err) {
			t.Fatalf("%s after HandOff: got %v, want busy", filepath.Base(q), err)
		}
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	waitFree(t, free, "Release")
	h.Stop()
}

func readUntil(t *testing.T, r *bufio.Reader, last string) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("exec'd program ended before %q: %v", last, err)
		}
		if strings.TrimSpace(line) == last {
			return b.String()
		}
		b.WriteString(line)
	}
}
