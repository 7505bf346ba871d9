package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// Read is one event as read back: the line's fields, and what the file
// says of who wrote it. The "uid" field is what the writer claimed; only
// FileUID, the owner of the file the line is in, is the kernel's word.
type Read struct {
	Event
	FileUID int    `json:"file_uid"`
	File    string `json:"file"`
	// Trusted: the file's owner is the uid the line and the file name
	// claim. Any uid that can write the registry can write lines of its
	// own; an untrusted line is one whose claims do not match its file.
	Trusted bool `json:"trusted"`
}

// Report is what a read found.
type Report struct {
	Events  []Read   // oldest first
	Garbage int      // lines that are not events of this format
	Refused []string // files not read, and why
}

// Bounds of a read: whatever the files hold, a read takes in at most
// maxTail of each (the newest lines), maxFiles files, and maxTotal in all.
var (
	maxTail        = MaxFile + 64<<10
	maxFiles       = 256
	maxTotal int64 = 64 << 20
)

// logName is compiled on first use: every drop-in run (and its holder)
// links this package, and only readers of the log match names.
var logName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]{1,10})\.jsonl(\.1)?$`) })

// ReadRegistry reads every uid's log in the registry at root.
func ReadRegistry(root string, since time.Time) (*Report, error) {
	r, err := safefs.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rep := &Report{}
	ents, err := r.ReadDir(DirRel)
	if errors.Is(err, unix.ENOENT) {
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := r.OpenDir(DirRel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var names []string
	for _, e := range ents {
		if logName().MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	rep.read(d, names, since)
	return rep, nil
}

// ReadFile reads an operator-named log (path.1, then path).
func ReadFile(path string, since time.Time) (*Report, error) {
	d, err := safefs.OpenRoot(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rep := &Report{}
	base := filepath.Base(path)
	rep.read(d, []string{base + ".1", base}, since)
	return rep, nil
}

func (rep *Report) read(d *safefs.Dir, names []string, since time.Time) {
	var total int64
	for n, name := range names {
		if n == maxFiles || total >= maxTotal {
			rep.Refused = append(rep.Refused, fmt.Sprintf("%d more files not read (a read takes at most %d files, %d bytes)", len(names)-n, maxFiles, maxTotal))
			break
		}
		nread, err := rep.readOne(d, name, since)
		total += nread
		if err != nil && !errors.Is(err, unix.ENOENT) {
			rep.Refused = append(rep.Refused, err.Error())
		}
	}
	sort.SliceStable(rep.Events, func(a, b int) bool { return rep.Events[a].Time.Before(rep.Events[b].Time) })
}

// readOne reads the newest maxTail bytes of name: opened O_NOFOLLOW and
// O_NONBLOCK beneath d (safefs.Open: a symlink is refused, a FIFO never
// blocks, only a regular file is read), then a bounded read from its end.
func (rep *Report) readOne(d *safefs.Dir, name string, since time.Time) (int64, error) {
	f, err := d.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	off := max(0, st.Size-maxTail)
	buf, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, maxTail), maxTail))
	if err != nil {
		return int64(len(buf)), err
	}
	if off > 0 {
		// Started inside a line: drop its end.
		if k := bytes.IndexByte(buf, '\n'); k >= 0 {
			buf = buf[k+1:]
		} else {
			buf = nil
		}
	}
	owner := int(st.Uid)
	nameUID := owner // an operator-named file claims no uid
	if m := logName().FindStringSubmatch(name); m != nil {
		nameUID, _ = strconv.Atoi(m[1])
	}
	for _, ln := range bytes.Split(buf, []byte{'\n'}) {
		if len(ln) == 0 {
			continue
		}
		var e Event
		if len(ln) > maxLine || json.Unmarshal(ln, &e) != nil || e.V != FormatVersion || e.Kind == "" {
			rep.Garbage++
			continue
		}
		if e.Time.Before(since) {
			continue
		}
		rep.Events = append(rep.Events, Read{Event: e, FileUID: owner, File: d.Join(name), Trusted: owner == e.UID && owner == nameUID})
	}
	return int64(len(buf)), nil
}
