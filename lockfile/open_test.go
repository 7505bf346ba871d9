package lockfile

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A process that holds a lock file never opens and closes it a second
// time: where a flock is a POSIX lock (NFS emulates flock with byte-range
// locks on the server), closing any descriptor of a file drops every lock
// the process holds on it. The test holds a real POSIX lock on the file
// through its own descriptor, as NFS's emulation would, takes the lock (on
// a file the umask narrowed, so that it is widened too) and checks that the
// POSIX lock survived.
func TestLockNeverReopensItsFile(t *testing.T) {
	for name, lock := range primitives {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if IsNFS(dir) {
				t.Skip("on NFS the flock is itself a POSIX lock on the server: the probe cannot tell the two apart")
			}
			p := filepath.Join(dir, "x.lock")
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			posix := unix.Flock_t{Type: unix.F_WRLCK}
			if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &posix); err != nil {
				t.Fatal(err)
			}
			l, err := lock(p, Exclusive)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			if fi, _ := os.Stat(p); fi.Mode().Perm() != filePerm {
				t.Fatalf("mode %04o: the widening this test covers did not run", fi.Mode().Perm())
			}
			if !posixLocked(t, p) {
				t.Fatal("taking the lock dropped this process's POSIX lock on the file: it opened and closed the file a second time")
			}
		})
	}
}

// posixLocked: does anyone hold a POSIX lock on p? An open file
// description lock query conflicts with the caller's own POSIX locks too.
// The probe descriptor is closed only after the test's verdict is taken:
// closing it drops the very lock it looks for.
func posixLocked(t *testing.T, p string) bool {
	probe, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	q := unix.Flock_t{Type: unix.F_WRLCK}
	err = unix.FcntlFlock(probe.Fd(), unix.F_OFD_GETLK, &q)
	probe.Close()
	if err != nil {
		t.Fatal(err)
	}
	return q.Type != unix.F_UNLCK
}

// A uid that cannot write a lock file still locks it: opened read-only
// (never failing where read access is enough), shared everywhere, and
// exclusive where the filesystem allows it on a read-only descriptor
// (tmpfs here; NFSv4 refuses it, with refusedError's message).
func TestReadOnlyLockFileFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as uid 65534")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's own parent is 0700
	exe := filepath.Join(dir, "lockfile.test")
	copyFile(t, os.Args[0], exe)
	p := filepath.Join(dir, "x.lock")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644) // root's, and not writable by uid 65534
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOCKFILE_HELPER=readonly", "LOCK_PATH="+p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "shared ok read-only") {
		t.Fatalf("helper said %q, want a shared lock through a read-only descriptor", out)
	}
	// NFSv4 refuses the exclusive one (EBADF): then the message says why.
	refused := strings.Contains(string(out), "exclusive refused") && strings.Contains(string(out), "0666")
	if !strings.Contains(string(out), "exclusive ok read-only") && !(IsNFS(dir) && refused) {
		t.Fatalf("helper said %q, want an exclusive lock (or on NFS, a refusal that says why)", out)
	}
}

// helperReadOnly is TestReadOnlyLockFileFallback's uid 65534.
func helperReadOnly() {
	for _, m := range []Mode{Shared, Exclusive} {
		l, err := Try(os.Getenv("LOCK_PATH"), m)
		if err != nil {
			fmt.Println(m, "refused:", err)
			continue
		}
		ro := "read-write"
		if l.readOnly {
			ro = "read-only"
		}
		fmt.Println(m, "ok", ro)
		l.Release()
	}
	os.Exit(0)
}

// A lock the filesystem refuses says which file, which filesystem and what
// to do: an exclusive lock on NFSv4 through a read-only descriptor fails
// with EBADF, which alone reads like a bug in the caller.
func TestRefusedLockIsExplained(t *testing.T) {
	dir := t.TempDir()
	err := refusedError(filepath.Join(dir, "x.lock"), Exclusive, true, unix.EBADF)
	for _, want := range []string{"tmpfs", "read-only", "0666", "exclusive"} {
		if !strings.Contains(err.Error(), want) && FilesystemName(dir) == "tmpfs" {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if err := refusedError(dir, Shared, false, unix.ENOLCK); !strings.Contains(err.Error(), "lock manager") {
		t.Errorf("ENOLCK: %q", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Every lock is taken on a descriptor open for writing where the uid may
// write the file: NFSv4 refuses an exclusive lock (EBADF) on a read-only
// one, and tmpfs cannot show that, so the descriptor's flags are read from
// /proc.
func TestLockDescriptorIsWritable(t *testing.T) {
	for name, lock := range primitives {
		t.Run(name, func(t *testing.T) {
			l, err := lock(filepath.Join(t.TempDir(), "x.lock"), Shared)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", l.fd))
			if err != nil {
				t.Fatal(err)
			}
			var flags int
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					fmt.Sscanf(strings.TrimSpace(v), "%o", &flags)
				}
			}
			if flags&unix.O_ACCMODE != unix.O_RDWR || flags&unix.O_NONBLOCK == 0 {
				t.Fatalf("lock descriptor flags %o: want O_RDWR and O_NONBLOCK", flags)
			}
		})
	}
}
