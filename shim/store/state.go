package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// A state record says what a verified extraction contained when it was last
// verified: the tarball's file list, and the identity and timestamps of every
// directory, the marker and the tarball. A warm run then only lstats
// directories (a file removed, added or renamed anywhere changes its
// directory's mtime and ctime) instead of every file: 4.6 ms instead of
// 24.5 ms for 400 crates on the reference machine. What that cannot see (a
// file rewritten in place) is what `cargo-shim verify` and
// CARGO_SHIM_VERIFY=files are for.

const stateHeader = "cargo-shim-state 1"

// racyWindow: a stat taken within this long after a change may share the
// change's timestamp (coarse kernel clocks tick every 1-10 ms), so a later
// change in the same tick would go unseen. Entries that new are re-verified
// on the next run instead of trusted ("racy git", same cure).
const racyWindow = 50 * time.Millisecond

type stamp struct {
	Ino   uint64
	Size  int64
	Mtime int64 // ns
	Ctime int64 // ns
}

func stampOf(st *unix.Stat_t) stamp {
	return stamp{
		Ino:   st.Ino,
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
	}
}

type dirStamp struct {
	Rel string
	stamp
}

// State is one instance's record.
type State struct {
	SHA256   string
	Recorded int64 // ns
	Tarball  *stamp
	Marker   stamp
	Dirs     []dirStamp
	// Exposed are the stamps of every file of an extraction a less-trusted
	// uid could write, taken before root compared their contents with the
	// verified tarball (trust.go): what the next root run must find unmoved.
	Exposed  []dirStamp
	Files    []FileEntry // only Path and Size are kept
	hasFiles bool
	vouched  bool // read from a record trustedRecord vouches for
}

// readRecord reads a whole record file, refusing one over the bound before
// allocating for it.
func readRecord(p string) ([]byte, error) {
	f, err := openBelow(p) // beneath its registry, no link followed
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err == nil && len(data) > maxRecordSize {
		err = fmt.Errorf("%s: record larger than %d bytes", p, maxRecordSize)
	}
	return data, err
}

func readState(p string, withFiles bool) (*State, error) {
	data, err := readRecord(p)
	if err != nil {
		return nil, err
	}
	s, err := parseState(data, withFiles)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return s, nil
}

// parseState decodes a state record. Everything in it came from a file
// another uid could have written: paths are checked like a tarball's, and
// anything malformed makes the whole record void (a full check follows).
func parseState(data []byte, withFiles bool) (*State, error) {
	s := &State{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	// Grown as lines need, up to 1 MiB: a warm root run reads one record
	// per exposed extraction, each of a few KB.
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != stateHeader {
		return nil, errors.New("not a cargo-shim state record")
	}
	for sc.Scan() {
		line := sc.Text()
		kind, rest, _ := strings.Cut(line, " ")
		var err error
		switch kind {
		case "sha256":
			s.SHA256 = rest
			if !validSHA256(rest) {
				err = errBadRecord
			}
		case "recorded":
			s.Recorded, err = strconv.ParseInt(rest, 10, 64)
		case "tarball":
			var t stamp
			t, _, err = parseStamp(rest, false)
			s.Tarball = &t
		case "marker":
			s.Marker, _, err = parseStamp(rest, false)
		case "d":
			var d dirStamp
			d.stamp, d.Rel, err = parseStamp(rest, true)
			if err == nil && !validRecordedDir(d.Rel, len(s.Dirs) == 0) {
				err = errBadRecord
			}
			s.Dirs = append(s.Dirs, d)
		case "x":
			var d dirStamp
			d.stamp, d.Rel, err = parseStamp(rest, true)
			if err == nil && !validRelPath(d.Rel) {
				err = errBadRecord
			}
			s.Exposed = append(s.Exposed, d)
		case "f":
			s.hasFiles = true
			if !withFiles {
				return s, nil
			}
			var fe FileEntry
			fe, err = parseFileLine(rest)
			s.Files = append(s.Files, fe)
		}
		if err != nil {
			return nil, fmt.Errorf("bad line %q", Printable(line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(s.Dirs) == 0 || s.Dirs[0].Rel != "." {
		return nil, errors.New("no root directory recorded")
	}
	return s, nil
}

var errBadRecord = errors.New("bad record")

func parseFileLine(rest string) (FileEntry, error) {
	size, rel, ok := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(size, 10, 64)
	if !ok || err != nil || n < 0 || !validRelPath(rel) {
		return FileEntry{}, errBadRecord
	}
	return FileEntry{Path: rel, Size: n}, nil
}

// validRelPath: a path below an extraction as a tarball entry may name one,
// never leaving it, never printable as something else.
func validRelPath(rel string) bool {
	if rel == "" || len(rel) > maxTarPath {
		return false
	}
	// Component by component without a Split: a warm run's plan record
	// holds a few thousand of these.
	for rest := rel; ; {
		part, more, found := strings.Cut(rest, "/")
		if part == "" || part == "." || part == ".." || strings.IndexFunc(part, needsEscape) >= 0 {
			return false
		}
		if !found {
			break
		}
		rest = more
	}
	return rel != markerName && !strings.HasPrefix(rel, markerName+"/")
}

// validRecordedDir: "." first, below it only paths.
func validRecordedDir(rel string, first bool) bool {
	if first {
		return rel == "."
	}
	return validRelPath(rel)
}

// validSHA256: lowercase hex, at most a sha256's 64 digits; "" is none.
func validSHA256(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// parseStamp reads "ino size mtime ctime[ rel]".
func parseStamp(s string, withRel bool) (stamp, string, error) {
	n := 4
	if withRel {
		n = 5
	}
	parts := strings.SplitN(s, " ", n)
	if len(parts) != n {
		return stamp{}, "", errors.New("short stamp")
	}
	// Inode numbers use all 64 bits on some filesystems (GlusterFS derives
	// them from 128-bit file ids): read as signed, half of them failed to
	// parse there, so every record was rejected and every run re-verified
	// and rewrote every crate.
	ino, err := strconv.ParseUint(parts[0], 10, 64)
	if err != nil {
		return stamp{}, "", err
	}
	var v [3]int64
	for i := range v {
		x, err := strconv.ParseInt(parts[i+1], 10, 64)
		if err != nil {
			return stamp{}, "", err
		}
		v[i] = x
	}
	rel := ""
	if withRel {
		rel = parts[4]
	}
	return stamp{Ino: ino, Size: v[0], Mtime: v[1], Ctime: v[2]}, rel, nil
}

func (s *State) encode() []byte {
	var b bytes.Buffer
	b.WriteString(stateHeader + "\n")
	fmt.Fprintf(&b, "sha256 %s\nrecorded %d\n", s.SHA256, s.Recorded)
	w := func(kind string, st stamp, rel string) {
		fmt.Fprintf(&b, "%s %d %d %d %d", kind, st.Ino, st.Size, st.Mtime, st.Ctime)
		if kind == "d" || kind == "x" {
			b.WriteString(" " + rel)
		}
		b.WriteByte('\n')
	}
	if s.Tarball != nil {
		w("tarball", *s.Tarball, "")
	}
	w("marker", s.Marker, "")
	for _, d := range s.Dirs {
		w("d", d.stamp, d.Rel)
	}
	for _, x := range s.Exposed { // before the "f" lines, which a fast read stops at
		w("x", x.stamp, x.Rel)
	}
	for _, f := range s.Files {
		fmt.Fprintf(&b, "f %d %s\n", f.Size, f.Path)
	}
	return b.Bytes()
}

// recordState stamps the extraction as it is now. It is called only after
// the extraction was verified against manifest, under a lock that keeps
// repairs away. Written to a temp file and renamed: concurrent readers see
// the old or the new record, never half of one.
func (r Registry) recordState(i Instance, m *Manifest) error {
	return r.recordStateOf(i, m, nil)
}

// recordStateOf is recordState of an extraction whose content root compared
// with the tarball (snap: its stamps taken before): recorded only if no
// directory moved since, with every file's stamps.
func (r Registry) recordStateOf(i Instance, m *Manifest, snap *exposure) error {
	root := r.Extraction(i)
	s := &State{SHA256: m.SHA256}
	for n, rel := range m.Dirs {
		var st unix.Stat_t
		if err := r.lstatRaw(filepath.Join(root, filepath.FromSlash(rel)), &st); err != nil {
			return err
		}
		s.Dirs = append(s.Dirs, dirStamp{Rel: rel, stamp: stampOf(&st)})
		if snap != nil && (n >= len(snap.dirs) || snap.dirs[n] != s.Dirs[n]) {
			return fmt.Errorf("%s moved while it was verified", i)
		}
	}
	if snap != nil {
		s.Exposed = snap.files
	}
	var st unix.Stat_t
	if err := r.lstatRaw(filepath.Join(root, markerName), &st); err != nil {
		return err
	}
	s.Marker = stampOf(&st)
	if err := r.lstatRaw(r.Tarball(i), &st); err == nil {
		t := stampOf(&st)
		s.Tarball = &t
	}
	for _, f := range m.Files {
		if strings.ContainsAny(f.Path, "\n") {
			return fmt.Errorf("file name with a newline in %s", i)
		}
		s.Files = append(s.Files, FileEntry{Path: f.Path, Size: f.Size})
	}
	s.Recorded = time.Now().UnixNano()
	return r.writeFileAtomic(r.StatePath(i), s.encode())
}

// writeFileAtomic replaces the record p (temp file and rename, below the
// registry's descriptor, no link followed), creating its shared directory
// race-free and sticky if missing: every runner uid must be able to add
// records, and none to replace another's.
func (r Registry) writeFileAtomic(p string, data []byte) error {
	err := r.writeAtomic(p, data, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err = r.mkdirAll(filepath.Dir(p), safefs.Shared); err == nil {
			err = r.writeAtomic(p, data, 0o644)
		}
	}
	return err
}

// RecordedSHA256 is the tarball checksum recorded when i was last verified
// from a trusted tarball, or "".
func (r Registry) RecordedSHA256(i Instance) string {
	s, err := readState(r.StatePath(i), false)
	if err != nil || !validChecksum(s.SHA256) || !r.trustedRecord(r.StatePath(i)) {
		return ""
	}
	return s.SHA256
}

// RecordIfVerified records the state of an instance a full check found
// healthy against a trusted manifest, so that later checks are cheap. Safe
// without the crate's lock: a concurrent repair swaps in a complete
// directory, whose stamps differ from the ones recorded here, so the record
// is simply not trusted.
func (r Registry) RecordIfVerified(f Finding) error {
	// Only from a trusted manifest: recording the sha256 of a tarball whose
	// checksum differs would launder it into "the known checksum".
	// Nor with a truncated tarball kept for an offline build: its stamp in
	// a record would let the next online run trust it instead of replacing it.
	if !f.fresh || !f.recordable() {
		return nil
	}
	return r.recordStateOf(f.Instance, f.manifest, f.exposure)
}
