package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// Level is how much a check looks at.
type Level int

const (
	// Fast compares recorded directory, marker and tarball stamps (default).
	Fast Level = iota
	// Files also lstats every file of the tarball.
	Files
	// Deep re-reads the tarball and compares every file's content.
	Deep
)

func (l Level) String() string {
	return [...]string{"fast", "files", "deep"}[l]
}

// ParseLevel reads a CARGO_SHIM_VERIFY value.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "", "fast":
		return Fast, nil
	case "files":
		return Files, nil
	case "deep":
		return Deep, nil
	}
	return Fast, fmt.Errorf("unknown verification level %q (want fast, files or deep)", s)
}

// Verdict is what a check concluded about one instance.
type Verdict int

const (
	Healthy Verdict = iota
	// Cold: neither extracted nor cached; cargo will download it.
	Cold
	// Broken: the extraction or the tarball needs repair before cargo runs.
	Broken
)

func (v Verdict) String() string {
	return [...]string{"healthy", "cold", "broken"}[v]
}

// Fault is what kind of thing a Broken verdict is about: what repair does
// and how a report names it follow from it.
type Fault int

const (
	NoFault Fault = iota
	// Damaged: the extraction is incomplete, altered or not a directory.
	Damaged
	// NotExtracted: a trusted tarball is cached but was never unpacked.
	NotExtracted
	// CorruptTarball: the .crate cannot be read to its end.
	CorruptTarball
)

// Finding is the result of checking one instance.
type Finding struct {
	Instance
	Verdict Verdict
	Fault   Fault
	// Reason says what is wrong, in a few words ("src/lib.rs missing").
	Reason string
	// Path is the file or directory Reason is about.
	Path string

	ExtractionOK   bool   // the extraction is complete (whatever the tarball)
	TarballMissing bool   // no .crate beside a healthy extraction
	TarballCorrupt error  // the .crate cannot be read to its end
	TarballUnsafe  error  // the .crate cannot be used: an entry cargo-shim will not extract, or unreadable
	Mismatch       string // the .crate's sha256, when it differs from Cargo.lock
	// Unverified says how the extraction differs from a tarball of no
	// known checksum: reported, never repaired (Path names the file).
	Unverified string

	// manifest is a verified description of the extraction to record, or the
	// trusted tarball's to repair from.
	manifest *Manifest
	trusted  bool // manifest is known good: from a verified tarball or a state recorded from one
	// tarballOK: the .crate on disk was read to its end and its sha256 is the
	// trusted checksum (trust.go): the only source a repair uses.
	tarballOK bool
	fresh     bool // from a full check: worth recording, worth reporting
	// exposure: root compared the contents of an extraction another uid
	// could write; its stamps then go into the record (exposed.go).
	exposure *exposure
	// exposedUnverified: such an extraction with no tarball to compare.
	exposedUnverified bool
}

// Check looks at one instance. It takes no lock; callers decide what the
// result is worth by what they hold.
func (r Registry) Check(i Instance, level Level, offline bool) Finding {
	if level < Deep {
		if f, sure := r.stateCheck(i, level); sure {
			return f
		}
	}
	return r.fullCheck(i, level, offline)
}

// stateCheck is the fast check from i's state record.
func (r Registry) stateCheck(i Instance, level Level) (Finding, bool) {
	st, err := readState(r.StatePath(i), level >= Files)
	if err != nil {
		return Finding{Instance: i}, false
	}
	// Only root's own record may vouch for an extraction another uid can write.
	st.vouched = rootRun && len(st.Exposed) > 0 && r.trustedRecord(r.StatePath(i))
	return r.fastCheck(i, st, level)
}

const (
	srcTree   = "src"
	cacheTree = "cache"
)

// stater lstats paths below src/<regdir> and cache/<regdir> relative to
// descriptors of those directories, so the kernel walks three components
// instead of ten (about 25% of a warm check). A nil stater resolves from the
// registry's descriptor. Either way nothing below the registry is followed.
type stater struct {
	dirs map[[2]string]*safefs.Dir
}

func (r Registry) openStater(regdirs []string) *stater {
	s := &stater{dirs: map[[2]string]*safefs.Dir{}}
	for _, d := range regdirs {
		for _, tree := range []string{srcTree, cacheTree} {
			if sub, err := r.subdir(filepath.Join(r.Root, tree, d)); err == nil {
				s.dirs[[2]string{tree, d}] = sub
			}
		}
	}
	return s
}

func (s *stater) close() {
	if s == nil {
		return
	}
	for _, d := range s.dirs {
		d.Close()
	}
}

func (s *stater) lstat(r Registry, tree, regdir, rel string, st *unix.Stat_t) error {
	if s != nil {
		if d, ok := s.dirs[[2]string{tree, regdir}]; ok {
			return d.LstatRaw(rel, st)
		}
	}
	return r.lstatRaw(filepath.Join(r.Root, tree, regdir, rel), st)
}

// extraction opens i's extraction as a safefs.Tree: its stamps then cost
// one fstatat each, relative to the extraction (or to a directory of it
// held open), where a path resolved from the registry costs three.
func (s *stater) extraction(r Registry, i Instance, t *safefs.Tree) error {
	if s != nil {
		if d, ok := s.dirs[[2]string{srcTree, i.Regdir}]; ok {
			return d.OpenTree(t, i.Dir())
		}
	}
	d, err := r.subdir(filepath.Join(r.Root, srcTree, i.Regdir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.OpenTree(t, i.Dir())
}

// fastCheck trusts the record while every stamp still matches it. sure is
// false when something changed and only a full check can tell: a record
// only ever makes the shim look closer, it never proves a crate broken.
func (r Registry) fastCheck(i Instance, s *State, level Level) (f Finding, sure bool) {
	f = Finding{Instance: i}
	var ext safefs.Tree
	if err := r.at.extraction(r, i, &ext); err != nil {
		// The record says it was there; only the tarball (or a record no
		// other uid could have written) may say it must be.
		return f, false
	}
	defer ext.Close()
	var st unix.Stat_t
	racy := s.Recorded - racyWindow.Nanoseconds()
	exposed := false
	for _, d := range s.Dirs {
		if err := ext.Lstat(d.Rel, &st); err != nil {
			return f, false // as above
		}
		if st.Ino != d.Ino || st.Mtim.Nano() != d.Mtime || st.Ctim.Nano() != d.Ctime || d.Ctime >= racy {
			return f, false
		}
		exposed = exposed || exposedStat(&st)
	}
	if err := ext.Lstat(markerName, &st); err != nil {
		return f, false
	}
	if st.Size != int64(len(marker)) || st.Ino != s.Marker.Ino || st.Mtim.Nano() != s.Marker.Mtime {
		return f, false
	}
	if rootRun && (exposed || exposedStat(&st) || len(s.Exposed) > 0) && !r.exposedUnmoved(&ext, s, racy) {
		return f, false // exposed.go: root compares its contents again
	}
	if level >= Files {
		for _, fe := range s.Files {
			err := ext.Lstat(fe.Path, &st)
			if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != fe.Size {
				return f, false // look closer: see above
			}
		}
	}
	if err := r.at.lstat(r, cacheTree, i.Regdir, i.Dir()+".crate", &st); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			return f, false
		}
		f.TarballMissing = true
	} else if s.Tarball == nil || stampOf(&st) != *s.Tarball || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return f, false
	}
	f.ExtractionOK = true
	return f, true
}

func (f *Finding) broken(reason, p string) { f.brokenAs(Damaged, reason, p) }

func (f *Finding) brokenAs(fault Fault, reason, p string) {
	if f.Verdict != Broken {
		f.Verdict, f.Fault, f.Reason, f.Path = Broken, fault, reason, p
	}
}

// fullCheck verifies the extraction against the tarball (or the recorded
// file list when the tarball is gone) and reads the whole tarball.
func (r Registry) fullCheck(i Instance, level Level, offline bool) Finding {
	// The one checksum believed: Cargo.lock's, or a trusted record's.
	i.Checksum = r.knownSum(i)
	f := Finding{Instance: i, fresh: true}
	root := r.Extraction(i)
	tb := r.Tarball(i)

	m := r.readTarball(&f)
	var hint *Manifest
	if !f.trusted {
		// What the extraction was verified to contain, when the tarball
		// cannot say: gone, corrupt, of no known checksum, or of other
		// bytes than the known one.
		hint, m = m, nil
		if st, err := readState(r.StatePath(i), true); err == nil && st.hasFiles && i.Checksum != "" && st.SHA256 == i.Checksum && r.trustedRecord(r.StatePath(i)) {
			m = &Manifest{SHA256: st.SHA256, Files: st.Files, Dirs: dirsOf(st.Files)}
			f.trusted = true
		}
	}
	f.manifest = m

	rootInfo, err := r.lstat(root)
	if err != nil {
		switch {
		case f.TarballCorrupt != nil:
			f.brokenAs(CorruptTarball, "tarball truncated or corrupt", tb)
		case f.tarballOK:
			// Cached but not extracted: the shim extracts it under the lock.
			f.brokenAs(NotExtracted, "not extracted", root)
		default:
			f.Verdict = Cold
		}
		return f
	}
	if !rootInfo.IsDir() {
		f.broken("extraction is not a directory", root)
		return f
	}
	mp := filepath.Join(root, markerName)
	got, err := r.readFile(mp, 64)
	switch {
	case err != nil:
		f.broken("marker missing", mp)
	case string(got) != marker:
		f.broken(fmt.Sprintf("marker is %q, want %q", got, marker), mp)
	case m != nil && f.trusted:
		// Only a known-good list proves files missing: a tarball with other
		// bytes may list other files than the extraction legitimately has.
		r.compareFiles(&f, root, m, level)
		if rootRun && f.Verdict != Broken {
			r.verifyExposed(&f, root, level)
		}
	case hint != nil && f.Mismatch == "":
		// A tarball of no known checksum proves nothing either way: a
		// difference is reported and the extraction, what plain cargo
		// would compile, left as it is.
		r.reportDifference(&f, root, hint, level)
	}
	if f.Verdict != Broken {
		f.ExtractionOK = true
		// A truncated tarball under a healthy extraction is harmless to
		// cargo (it unpacks nothing) and needed offline (a missing .crate
		// fails --offline), so it is repaired only when cargo can download.
		if f.TarballCorrupt != nil && !offline {
			f.brokenAs(CorruptTarball, "tarball truncated or corrupt", tb)
		}
	}
	return f
}

// readTarball reads i's tarball to its end and files what it found in f:
// missing, unusable, corrupt, of another checksum, or trusted.
func (r Registry) readTarball(f *Finding) *Manifest {
	i, tb := f.Instance, r.Tarball(f.Instance)
	tbInfo, tbErr := r.lstat(tb)
	switch {
	case tbErr != nil:
		f.TarballMissing = true
		return nil
	case !tbInfo.Mode().IsRegular() && !tbInfo.IsDir():
		// A FIFO, socket, device or symlink where cargo writes a regular
		// file: cargo opens it even under a healthy extraction (a FIFO
		// blocks it forever while it holds the package-cache lock every
		// runner shares), so it goes like a truncated one.
		f.TarballCorrupt = fmt.Errorf("%s is not a regular file", tb)
		return nil
	case !tbInfo.Mode().IsRegular():
		f.TarballUnsafe = fmt.Errorf("%s is not a regular file", tb)
		return nil
	}
	m, err := ReadManifest(tb, i.Crate)
	switch {
	case errors.Is(err, ErrCorrupt):
		f.TarballCorrupt = err
	case errors.Is(err, ErrUnsafe):
		f.TarballUnsafe = err
	case err != nil:
		// Unreadable (permissions, I/O) is not proof of anything: it is
		// reported and not used, and the extraction is judged alone.
		f.TarballUnsafe = fmt.Errorf("cannot read %s: %w", tb, err)
	case i.Checksum == "":
		// No known checksum: its bytes are anyone's, a hint at most.
	case m.SHA256 != i.Checksum:
		f.Mismatch = m.SHA256
	default:
		f.trusted, f.tarballOK = true, true
	}
	return m
}

// reportDifference compares the extraction with the file list of a tarball
// no checksum vouches for, and only reports what differs (Unverified).
func (r Registry) reportDifference(f *Finding, root string, hint *Manifest, level Level) {
	probe := Finding{Instance: f.Instance}
	r.compareFiles(&probe, root, hint, min(level, Files))
	if probe.Verdict == Broken {
		f.Unverified = fmt.Sprintf("differs from its tarball, whose checksum nothing trusted names (%s); left as it is", probe.Reason)
		f.Path = probe.Path
	}
}

// compareFiles reports the first file of m missing or of another size, naming
// the highest missing directory rather than each file under it.
func (r Registry) compareFiles(f *Finding, root string, m *Manifest, level Level) {
	missingDir := map[string]bool{}
	var st unix.Stat_t
	for _, d := range m.Dirs {
		if d == "." || missingDir[path.Dir(d)] {
			if d != "." {
				missingDir[d] = true
			}
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(d))
		if err := r.lstatRaw(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			missingDir[d] = true
			f.broken(d+"/ missing", p)
			return
		}
	}
	for _, fe := range m.Files {
		p := filepath.Join(root, filepath.FromSlash(fe.Path))
		if err := r.lstatRaw(p, &st); err != nil {
			f.broken(fe.Path+" missing", p)
			return
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			f.broken(fe.Path+" is not a regular file", p)
			return
		}
		if st.Size != fe.Size {
			f.broken(fmt.Sprintf("%s has %d bytes, want %d", fe.Path, st.Size, fe.Size), p)
			return
		}
	}
	if level == Deep && f.tarballOK {
		r.compareContents(f, root)
	}
}

// compareContents re-reads the tarball and compares each file with the
// content of its last entry (the one an unpacker leaves).
func (r Registry) compareContents(f *Finding, root string) {
	want := map[string][sha256.Size]byte{}
	_, err := walkTarball(r.Tarball(f.Instance), f.Crate, tarVisitor{file: func(e FileEntry, body io.Reader) error {
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			return err
		}
		want[e.Path] = [sha256.Size]byte(h.Sum(nil))
		return nil
	}})
	if err != nil || f.manifest == nil {
		return
	}
	for _, e := range f.manifest.Files {
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		have, err := r.hashFile(p, e.Size)
		if err != nil {
			f.broken(e.Path+" unreadable: "+err.Error(), p)
			return
		}
		if have != want[e.Path] {
			f.broken(e.Path+" differs from the tarball", p)
			return
		}
	}
}

// hashFile is the sha256 of the regular file p, read as a stream of at
// most size+1 bytes (the size the tarball gives it): another uid's file
// may be any size, and is never held in memory.
func (r Registry) hashFile(p string, size int64) (sum [sha256.Size]byte, err error) {
	f, err := r.open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, want %d", n, size)
	}
	return [sha256.Size]byte(h.Sum(nil)), err
}

// Fresh is true when the finding comes from a full check: worth reporting.
func (f Finding) Fresh() bool { return f.fresh }

// Describe renders a finding for messages: "src/lib.rs missing".
func (f Finding) Describe() string {
	if f.Reason != "" {
		return f.Reason
	}
	return strings.ToLower(f.Verdict.String())
}
