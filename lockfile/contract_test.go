package lockfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Both primitives: a single lock (gofrs/flock) and a set (raw descriptors).
var primitives = map[string]func(path string, mode Mode) (*Lock, error){
	"Try": Try,
	"AcquireSet": func(path string, mode Mode) (*Lock, error) {
		s, err := AcquireSet(context.Background(), []string{path}, mode, Options{})
		if err != nil {
			return nil, err
		}
		return s.Locks()[0], nil
	},
}

// A lock file that is a symlink is refused, and what it points to is
// neither created nor locked.
func TestContractRefusesSymlink(t *testing.T) {
	for name, lock := range primitives {
		t.Run(name, func(t *testing.T) {
			outside := filepath.Join(t.TempDir(), "outside")
			p := filepath.Join(t.TempDir(), "x.lock")
			os.Symlink(outside, p)
			if l, err := lock(p, Shared); err == nil || !strings.Contains(err.Error(), "symlink") {
				l.Release()
				t.Fatalf("lock through a symlink: got %v, want a refusal naming the symlink", err)
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Fatal("the symlink's target was created")
			}
		})
	}
}

// A lock file replaced between open and the identity check (gc removes
// lock files it holds): the lock returned is on the file now at the path,
// never on the one that was replaced.
func TestContractLocksTheFileAtItsPath(t *testing.T) {
	defer func() { afterLock = nil }()
	for name, lock := range primitives {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.lock")
			locksFileAtPath(t, lock, p, func() {
				os.WriteFile(p+".new", nil, 0o666)
				os.Rename(p+".new", p)
			})
		})
	}
}

// locksFileAtPath locks p exclusively with lock, calling replace once
// between the flock and the identity check, and fails unless the lock
// returned is on the file now at p.
func locksFileAtPath(t *testing.T, lock func(string, Mode) (*Lock, error), p string, replace func()) {
	t.Helper()
	replaced := false
	afterLock = func(string) {
		if !replaced {
			replaced = true
			replace()
		}
	}
	l, err := lock(p, Exclusive)
	afterLock = nil
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	var now unix.Stat_t
	unix.Lstat(p, &now)
	if !replaced || inoOf(t, l) != now.Ino {
		t.Fatalf("locked a file that is no longer at %s (replaced=%v)", p, replaced)
	}
	if _, err := Try(p, Shared); !IsBusy(err) {
		t.Fatalf("the file at the path is not locked: %v", err)
	}
}

func inoOf(t *testing.T, l *Lock) uint64 {
	fi, err := l.Stat()
	if err != nil {
		t.Fatal(err)
	}
	switch st := fi.Sys().(type) {
	case *unix.Stat_t:
		return st.Ino
	case *syscall.Stat_t:
		return st.Ino
	}
	t.Fatalf("no inode in %T", fi.Sys())
	return 0
}

// A FIFO planted at a lock path (outside any declared registry: a home, a
// test's directory) is refused, naming it, instead of blocking in open(2)
// where no lock timeout applies. The guard below only turns a hang into a
// failure.
func TestContractRefusesFIFO(t *testing.T) {
	for name, lock := range primitives {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.lock")
			if err := unix.Mkfifo(p, 0o666); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				l, err := lock(p, Exclusive)
				l.Release()
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), p) {
					t.Fatalf("lock on a FIFO: got %v, want a refusal naming it", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the lock's open blocked on a FIFO")
			}
		})
	}
}
