package lockfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
	"golang.org/x/sys/unix"
)

// A holder note says who holds locks on a registry, for the runners that
// wait for them: on a shared filesystem they cannot see the holder's process
// (another host), and /proc/locks does not list FUSE flocks at all. A note
// is an empty file in one directory whose name says who (see Note),
// published by the holder process once it has its locks, removed when it
// exits, and flocked exclusively by it for as long as it lives: a note whose
// flock is free is a holder that died without cleaning up; one whose flock
// is taken is alive, or is a host that died and whose locks the filesystem
// has not yet given up. Everything is in the name because reading a file
// another host wrote can wait for that host (CephFS waits to revoke a dead
// client's capabilities until it evicts it), while a directory listing does
// not. The holder publishes after answering "ok": no run waits for it.

// NoteSuffix ends every note's name.
const NoteSuffix = ".note"

// Note is who holds locks: one run of the drop-in.
type Note struct {
	Host    string
	Pid     int
	Uid     int
	Start   time.Time
	Command string // cargo's subcommand
}

// Name encodes the note as a file name: pid@host+uid+start+command, each
// part reduced to [A-Za-z0-9-] so that another uid's name prints safely.
func (n Note) Name() string {
	return fmt.Sprintf("%d@%s+%d+%d+%s", n.Pid, safeWord(n.Host, 64), n.Uid, n.Start.Unix(), safeWord(n.Command, 32))
}

func (n Note) String() string {
	return fmt.Sprintf("pid %d on host %s (uid %d, since %s): cargo %s", n.Pid, n.Host, n.Uid, n.Start.UTC().Format("15:04:05Z"), n.Command)
}

// ParseNote reads a note's name back; ok is false for any other name.
func ParseNote(name string) (n Note, ok bool) {
	name, ok = strings.CutSuffix(name, NoteSuffix)
	pid, rest, ok1 := strings.Cut(name, "@")
	f := strings.Split(rest, "+")
	if !ok || !ok1 || len(f) != 4 {
		return Note{}, false
	}
	var err [3]error
	n.Pid, err[0] = strconv.Atoi(pid)
	n.Uid, err[1] = strconv.Atoi(f[1])
	var start int64
	start, err[2] = strconv.ParseInt(f[2], 10, 64)
	if err[0] != nil || err[1] != nil || err[2] != nil || f[0] != safeWord(f[0], 64) || f[3] != safeWord(f[3], 32) {
		return Note{}, false
	}
	n.Host, n.Start, n.Command = f[0], time.Unix(start, 0), f[3]
	return n, true
}

func safeWord(s string, max int) string {
	b := []byte(s)
	for k, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[k] = '-'
		}
	}
	return string(b[:min(len(b), max)])
}

// The notes directory sits in the registry, where another uid may plant a
// symlink at it or swap it for one between a check and a use: every note is
// therefore made, renamed, listed and removed relative to the directory's
// descriptor, resolved beneath the registry with no symlink followed
// (openHolders), never by path.

// openHolders opens the notes directory dir, creating it (sticky, shared)
// when create is set. Below a declared registry it is resolved beneath it;
// elsewhere (a registry not declared, in tests) the path itself is opened,
// and only its own last component must not be a symlink.
func openHolders(dir string, create bool) (*safefs.Dir, error) {
	if d, rel, ok, err := anchor(dir); err != nil {
		return nil, err
	} else if ok {
		if create {
			if _, err := mkdirBeneath(dir); err != nil {
				return nil, err
			}
		}
		return d.OpenDir(rel)
	}
	if create {
		if err := mkdirShared(dir); err != nil {
			return nil, err
		}
	}
	parent, err := safefs.OpenRoot(filepath.Dir(dir))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return parent.OpenDir(filepath.Base(dir))
}

// PublishNote creates n's note in dir, locked exclusively by the returned
// file until it is closed; remove it with RemoveNote. The note appears under
// its name only once locked (made beside it, then renamed), so a free lock
// always means a dead holder.
func PublishNote(dir string, n Note) (*os.File, error) {
	hd, err := openHolders(dir, true)
	if err != nil {
		return nil, err
	}
	defer hd.Close()
	tmp := "." + n.Name() + ".tmp"
	// Read-write: on NFSv4 an exclusive flock is a POSIX write lock, which
	// a read-only descriptor is refused (EBADF).
	f, err := hd.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, err
	}
	if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		err = hd.Rename(tmp, hd, n.Name()+NoteSuffix)
	}
	if err != nil {
		f.Close()
		hd.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// RemoveNote removes the note f holds, then lets go of it.
func RemoveNote(f *os.File, dir string, n Note) {
	if hd, err := openHolders(dir, false); err == nil {
		hd.Remove(n.Name() + NoteSuffix)
		hd.Close()
	}
	f.Close()
}

// noteProbe bounds the wait for one note's liveness: opening a file made by
// a host that died can wait until the filesystem evicts that host.
const noteProbe = 300 * time.Millisecond

// LiveNotes lists the notes in dir but self's whose holder may be alive:
// locked, or not answering within noteProbe (a host that died). Notes left by
// dead holders are removed when this uid may. Only called by a runner that
// waits.
func LiveNotes(dir string, self Note) []Note {
	hd, err := openHolders(dir, false)
	if err != nil {
		return nil
	}
	ents, err := hd.ReadDir(".")
	if err != nil {
		hd.Close()
		return nil
	}
	var out []Note
	var probes sync.WaitGroup
	for _, e := range ents {
		n, ok := ParseNote(e.Name())
		if !ok || e.Name() == self.Name()+NoteSuffix {
			continue
		}
		alive := make(chan bool, 1)
		probes.Add(1)
		go func() { defer probes.Done(); alive <- noteLocked(hd, e.Name()) }()
		select {
		case a := <-alive:
			if !a {
				continue
			}
		case <-time.After(noteProbe):
		}
		out = append(out, n)
	}
	// The descriptor outlives the probes still waiting on a dead host.
	go func() { probes.Wait(); hd.Close() }()
	return out
}

// noteLocked reports whether a holder holds the note name in hd; a free note
// is removed (its name is unique: nobody publishes it again).
func noteLocked(hd *safefs.Dir, name string) bool {
	f, err := hd.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		return true
	}
	hd.Remove(name)
	return false
}
