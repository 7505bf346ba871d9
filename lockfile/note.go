package lockfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A holder note says who holds locks on a registry, for the runners that
// wait for them: on a shared filesystem they cannot see the holder's process
// (another host), and /proc/locks does not list FUSE flocks at all. A note
// is a small file in one directory, published by the holder process once it
// has its locks and removed when it exits, and flocked exclusively by it
// for as long as it lives: a note whose flock is free is a holder that died
// without cleaning up, one whose flock is taken is alive, or is a host that
// died and whose locks the filesystem has not yet given up (those two cannot
// be told apart from here; the lock goes when the filesystem evicts the
// host). The holder writes the note after answering "ok", so the run's own
// path never waits for it.

// NoteSuffix ends every note's name.
const NoteSuffix = ".note"

// maxNote bounds what is read of a note (another uid may have written it).
const maxNote = 512

// PublishNote writes text as a note named name in dir, locked exclusively by
// the returned file until it is closed; remove the note with RemoveNote. The
// note appears under its name only once locked (written beside it, then
// renamed), so a free lock always means a dead holder.
func PublishNote(dir, name, text string) (*os.File, error) {
	if err := mkdirShared(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil, errors.New(dir + " is not a directory")
	}
	final := filepath.Join(dir, name+NoteSuffix)
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := f.WriteString(text); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	return f, nil
}

// RemoveNote removes the note f holds, then lets go of it.
func RemoveNote(f *os.File, dir, name string) {
	os.Remove(filepath.Join(dir, name+NoteSuffix))
	f.Close()
}

// LiveNotes returns the text of every note in dir whose holder still has it
// locked (skipping the note named self, if any). Notes left by dead holders
// are removed when this uid may. Only called by a runner that waits.
func LiveNotes(dir, self string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), NoteSuffix)
		if !ok || name == self || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			continue
		}
		if unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) == nil {
			// Nobody holds it: a holder that died. Its name is unique
			// (host, pid, start), so nobody publishes it again.
			os.Remove(p)
			unix.Close(fd)
			continue
		}
		buf := make([]byte, maxNote)
		n, _ := unix.Read(fd, buf)
		unix.Close(fd)
		if n > 0 {
			out = append(out, printable(string(buf[:n])))
		}
	}
	return out
}

// printable keeps a note's text to one line of printable characters: it is
// shown to whoever waits, and another uid may have written it.
func printable(s string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// NoteName is a note's unique name for a holder: host, pid and start time.
func NoteName(host string, pid int, start time.Time) string {
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == '.' || r < 0x20 {
			return '_'
		}
		return r
	}, host)
	return host + "-" + strconv.Itoa(pid) + "-" + strconv.FormatInt(start.UnixNano(), 36)
}
