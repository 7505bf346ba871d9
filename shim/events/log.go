package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// DirRel is where a registry keeps its event logs, relative to its root:
// <uid>.jsonl and <uid>.jsonl.1 for each uid that wrote one.
const DirRel = ".cargo-shim/events"

// MaxFile caps each file: a line that would take a file past it first
// renames the file to <name>.1 (replacing the older one). So a uid's log
// never holds more than 2*MaxFile. (A variable for the tests.)
var MaxFile int64 = 1 << 20

// maxLine bounds one line: a longer reason is cut.
const maxLine = 4 << 10

// Log writes events: to this uid's file in a registry, or to a file the
// operator named (CARGO_SHIM_EVENT_LOG). Writing never fails the caller:
// an event that cannot be written is passed to Failed.
type Log struct {
	root string // the registry, or
	file string // the operator's file
	// Failed, if set, hears why an event was not written (a debug line).
	Failed func(error)

	once   sync.Once
	base   Event
	getenv Getenv
	prog   string

	mu       sync.Mutex
	removals map[string]int
}

// ForRegistry logs to registry/.cargo-shim/events/<uid>.jsonl under root.
func ForRegistry(root string, getenv Getenv, program string) *Log {
	return &Log{root: root, getenv: getenv, prog: program}
}

// ToFile logs to path (and path.1 when it rotates). The path is the
// operator's: symlinks in its directories are followed, the file itself
// must be a regular file this uid owns.
func ToFile(path string, getenv Getenv, program string) *Log {
	return &Log{file: path, getenv: getenv, prog: program}
}

// Discard records nothing but still counts removals (CARGO_SHIM_EVENT_LOG=off:
// the stats are kept all the same).
func Discard() *Log { return &Log{} }

// Emit fills in what every event carries and appends e as one line.
func (l *Log) Emit(e Event) {
	if l == nil {
		return
	}
	l.once.Do(func() {
		if l.getenv != nil {
			l.base = Base(l.getenv, l.prog)
		}
	})
	e.V, e.PID, e.UID, e.Host, e.Job, e.Program = FormatVersion, l.base.PID, l.base.UID, l.base.Host, l.base.Job, l.base.Program
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Kind == KindRemove {
		if l.removals == nil {
			l.removals = map[string]int{}
		}
		l.removals[e.Action]++
	}
	if err := l.write(line(e)); err != nil && l.Failed != nil {
		l.Failed(fmt.Errorf("cannot record %s event: %w", e.Kind, err))
	}
}

// Removals counts the removal events emitted so far, by Action (for the
// stats totals, which the caller adds once).
func (l *Log) Removals() map[string]int {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.removals))
	for k, n := range l.removals {
		out[k] = n
	}
	return out
}

// line is e as one JSON line of at most maxLine bytes.
func line(e Event) []byte {
	b, _ := json.Marshal(e)
	if over := len(b) + 1 - maxLine; over > 0 && len(e.Reason) > over {
		e.Reason = e.Reason[:len(e.Reason)-over-3] + "..."
		b, _ = json.Marshal(e)
	}
	return append(b, '\n')
}

func (l *Log) write(b []byte) error {
	if l.root == "" && l.file == "" {
		return nil
	}
	var d *safefs.Dir
	var name string
	var err error
	if l.file != "" {
		d, err = safefs.OpenRoot(filepath.Dir(l.file))
		name = filepath.Base(l.file)
	} else {
		d, err = openDir(l.root)
		name = strconv.Itoa(unix.Geteuid()) + ".jsonl"
	}
	if err != nil {
		return err
	}
	defer d.Close()
	err = appendLine(d, name, b)
	if l.file == "" && errors.Is(err, safefs.ErrNotOwn) {
		// Another uid planted a file at this uid's name first: in the
		// sticky events directory root may rename a fresh file of its own
		// over it (others may not), instead of losing every event.
		uid, rerr := d.ReplaceForeign(name, 0o644)
		if rerr != nil {
			return fmt.Errorf("%w (%v)", err, rerr)
		}
		if uid >= 0 && l.Failed != nil {
			l.Failed(fmt.Errorf("%s: replaced a file uid %d had put at this uid's event log", d.Join(name), uid))
		}
		err = appendLine(d, name, b)
	}
	return err
}

// openDir opens (creating) the registry's events directory, resolved
// beneath the registry: a symlink planted at any component is not followed.
func openDir(root string) (*safefs.Dir, error) {
	r, err := safefs.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.MkdirAll(DirRel, safefs.Shared)
}

// appendLine appends b to name in d, rotating name to name.1 first when b
// would take it past MaxFile. The file is opened O_APPEND (lines of
// concurrent writers do not interleave), O_NOFOLLOW and O_NONBLOCK, and
// written only if it is a regular file this uid owns (safefs.OpenOwn): root
// never appends to a file another uid owns or planted.
func appendLine(d *safefs.Dir, name string, b []byte) error {
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT
	for try := 0; ; try++ {
		var st unix.Stat_t
		fd, err := d.OpenOwn(name, flags, 0o644, 0, &st)
		if err != nil {
			return err
		}
		if st.Size+int64(len(b)) <= MaxFile || try > 0 {
			_, err = unix.Write(fd, b)
			unix.Close(fd)
			return err
		}
		unix.Close(fd)
		// Another writer of this uid may rotate at the same moment: then
		// one of the two renames moves a nearly empty file to .1, and up to
		// MaxFile of older events are lost. The bound holds either way.
		if err := d.Rename(name, d, name+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
}
