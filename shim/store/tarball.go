package store

import (
	"archive/tar"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// ErrCorrupt marks a tarball that cannot be read to its end: cargo would
// fail on it forever ("unexpected end of file"), so it is safe to remove.
var ErrCorrupt = errors.New("tarball is corrupt")

// ErrUnsafe marks a tarball with an entry cargo-shim refuses to extract (a
// path outside <name>-<version>/, "..", a link or a special file).
var ErrUnsafe = errors.New("tarball has an unsafe entry")

// marker is what cargo >= 1.71.1 writes into .cargo-ok when an extraction is
// complete (sources/registry/mod.rs: unpack_package).
const marker = `{"v":1}`

const markerName = ".cargo-ok"

// FileEntry is one regular file of a tarball.
type FileEntry struct {
	Path  string // relative to the extraction root, '/'-separated
	Size  int64
	Mode  int64
	Mtime time.Time
}

// Manifest is what a tarball puts into its extraction.
type Manifest struct {
	SHA256 string
	Files  []FileEntry
	Dirs   []string // every directory, "." first, sorted
}

// ReadManifest reads the whole tarball at p, checking every entry the way an
// extraction would and hashing the raw bytes.
func ReadManifest(p string, c Crate) (*Manifest, error) {
	return walkTarball(p, c, tarVisitor{})
}

func dirsOf(files []FileEntry) []string { return dirsWith(files, nil) }

// dirsWith lists every directory the files imply plus extra (directory
// entries of the tarball), "." first, sorted.
func dirsWith(files []FileEntry, extra []string) []string {
	set := map[string]bool{".": true}
	add := func(d string) {
		for ; d != "."; d = path.Dir(d) {
			if set[d] {
				break
			}
			set[d] = true
		}
	}
	for _, f := range files {
		add(path.Dir(f.Path))
	}
	for _, d := range extra {
		add(d)
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out) // "." sorts before any name
	return out
}

// tarVisitor receives the entries of a tarball in order. A path may come
// again (cargo's unpacker replaces the file: the last entry wins).
type tarVisitor struct {
	file func(FileEntry, io.Reader) error // nil: bodies are only read
	dir  func(rel string) error           // an explicit directory entry
}

// walkTarball reads tarball p as cargo's unpacker would, refusing what
// cargo-shim will not reproduce, and returns what an extraction holds.
func walkTarball(p string, c Crate, v tarVisitor) (*Manifest, error) {
	f, err := openBelow(p) // beneath its registry: no link followed anywhere
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("%s: empty file: %w", p, ErrCorrupt)
	}
	h := sha256.New()
	raw := io.TeeReader(f, h)
	zr, err := gzip.NewReader(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", p, err, ErrCorrupt)
	}
	// One member only: cargo ignores what follows it, and so do we.
	zr.Multistream(false)
	w := &tarWalk{p: p, c: c, v: v, tree: map[string]bool{}, index: map[string]int{}}
	w.in = &tarStream{r: zr, left: maxUnpacked(fi.Size())}
	if err := w.run(tar.NewReader(w.in)); err != nil {
		return nil, err
	}
	// A broken gzip trailer or garbage after the member: cargo accepts both,
	// so they are not corruption; the checksum will tell.
	_, _ = io.Copy(io.Discard, zr)
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, err
	}
	m := &Manifest{SHA256: hex.EncodeToString(h.Sum(nil)), Files: w.files}
	m.Dirs = dirsWith(w.files, w.dirs)
	return m, nil
}

// errUnpackLimit: cargo stops reading at max_unpack_size and fails.
var errUnpackLimit = errors.New("maximum limit reached when reading")

// tarStream is the decompressed stream with cargo's size cap. It remembers
// the last two blocks read: cargo's tar reader ends an archive at the first
// zero block, Go's wants a second one.
type tarStream struct {
	r    io.Reader
	left int64
	last [1024]byte
}

func (s *tarStream) Read(b []byte) (int, error) {
	if s.left <= 0 {
		return 0, errUnpackLimit
	}
	if int64(len(b)) > s.left {
		b = b[:s.left]
	}
	n, err := s.r.Read(b)
	s.left -= int64(n)
	if n >= len(s.last) {
		copy(s.last[:], b[n-len(s.last):n])
	} else {
		copy(s.last[:], s.last[n:])
		copy(s.last[len(s.last)-n:], b[:n])
	}
	return n, err
}

// endedAtZeroBlock: the header Go refused follows a zero block, where cargo
// had already stopped.
func (s *tarStream) endedAtZeroBlock() bool {
	for _, c := range s.last[:512] {
		if c != 0 {
			return false
		}
	}
	return true
}

// tarWalk is one pass over a tarball.
type tarWalk struct {
	p     string
	c     Crate
	v     tarVisitor
	in    *tarStream
	tree  map[string]bool // path -> is a regular file (else a directory)
	index map[string]int  // path -> position in files
	files []FileEntry
	dirs  []string
	n     int
}

func (w *tarWalk) run(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF || errors.Is(err, tar.ErrHeader) && w.in.endedAtZeroBlock() {
			return nil
		}
		if err != nil {
			return w.readError(err)
		}
		if w.n++; w.n > maxTarEntries {
			return fmt.Errorf("%s: more than %d entries: %w", w.p, maxTarEntries, ErrUnsafe)
		}
		rel, skip, err := w.entryPath(hdr)
		if err != nil {
			return err
		}
		if !skip {
			if err := w.entry(hdr, rel, tr); err != nil {
				if isReadError(err) {
					return w.readError(err)
				}
				return err
			}
		}
		// The visitor may not consume the body; reading the rest proves it
		// is there.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return w.readError(err)
		}
	}
}

// isReadError: err came from reading the tarball, not from a visitor.
func isReadError(err error) bool {
	return errors.Is(err, errUnpackLimit) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, gzip.ErrChecksum) || errors.As(err, new(flate.CorruptInputError))
}

// readError classifies a failure to read: a stream that ends early is
// corrupt (cargo fails on it forever); a format Go's reader refuses may be
// one cargo's accepts, so it proves nothing.
func (w *tarWalk) readError(err error) error {
	switch {
	case errors.Is(err, errUnpackLimit):
		return fmt.Errorf("%s: unpacked size exceeds cargo's limit: %w", w.p, ErrUnsafe)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("%s: %v: %w", w.p, err, ErrCorrupt)
	case errors.As(err, new(flate.CorruptInputError)):
		return fmt.Errorf("%s: %v: %w", w.p, err, ErrCorrupt)
	}
	return fmt.Errorf("%s: %v: %w", w.p, err, ErrUnsafe)
}

// entryPath maps an entry's name to a path inside the extraction the way
// cargo does: the first component must be <name>-<version>, "." and empty
// components vanish, and an entry named .cargo-ok anywhere is skipped (a
// crate must not ship a "complete" marker for a half extraction).
func (w *tarWalk) entryPath(hdr *tar.Header) (rel string, skip bool, err error) {
	name := hdr.Name
	unsafe := func(why string) (string, bool, error) {
		return "", false, fmt.Errorf("%s: entry %q %s: %w", w.p, Printable(name), why, ErrUnsafe)
	}
	if len(name) > maxTarPath {
		return unsafe("is too long")
	}
	parts := strings.Split(name, "/")
	if parts[0] != w.c.Dir() {
		return unsafe("is outside " + w.c.Dir() + "/")
	}
	var clean []string
	for _, part := range parts[1:] {
		switch {
		case part == "" || part == ".":
		case part == "..":
			return unsafe(`has a ".." component`)
		case strings.IndexFunc(part, needsEscape) >= 0:
			return unsafe("has a control character in its name")
		default:
			clean = append(clean, part)
		}
	}
	switch {
	case len(clean) > 0 && clean[len(clean)-1] == markerName:
		return "", true, nil
	case len(clean) > 1 && clean[0] == markerName:
		return unsafe("is inside the marker's place")
	case len(clean) == 0 && hdr.Typeflag == tar.TypeDir:
		return "", true, nil
	case len(clean) == 0:
		return unsafe("is not a directory but names the extraction itself")
	}
	return strings.Join(clean, "/"), false, nil
}

// entry records one file or directory, refusing what cargo's unpacker
// would fail on (a file where a directory is, or the reverse) and every
// kind it would not make a plain file or directory of.
func (w *tarWalk) entry(hdr *tar.Header, rel string, tr io.Reader) error {
	unsafe := func(why string) error {
		return fmt.Errorf("%s: entry %q %s: %w", w.p, Printable(hdr.Name), why, ErrUnsafe)
	}
	if hdr.Typeflag == tar.TypeGNUSparse || hasSparseRecords(hdr) {
		// Go expands a sparse entry to its logical size, cargo (PAX) writes
		// the raw map: neither is worth reproducing.
		return unsafe("is a sparse file")
	}
	isFile := false
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir:
	case tar.TypeReg, tar.TypeRegA:
		if strings.HasSuffix(hdr.Name, "/") {
			return unsafe("is a file with a directory's name")
		}
		isFile = true
	default:
		return unsafe(fmt.Sprintf("is not a regular file or directory (type %q)", hdr.Typeflag))
	}
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if w.tree[d] {
			return unsafe("is inside a path that is a file")
		}
		w.tree[d] = false
	}
	if was, seen := w.tree[rel]; seen && was != isFile {
		return unsafe("clashes with an earlier entry of another kind")
	}
	w.tree[rel] = isFile
	if !isFile {
		w.dirs = append(w.dirs, rel)
		if w.v.dir != nil {
			return w.v.dir(rel)
		}
		return nil
	}
	return w.file(hdr, rel, tr)
}

func hasSparseRecords(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// file records a regular file: a later entry of the same path replaces the
// earlier one, as cargo's unpacker replaces the file.
func (w *tarWalk) file(hdr *tar.Header, rel string, tr io.Reader) error {
	// cargo's unpacker takes whole seconds and turns 0 into 1.
	mtime := hdr.ModTime.Unix()
	if mtime == 0 {
		mtime = 1
	}
	e := FileEntry{Path: rel, Size: hdr.Size, Mode: hdr.Mode, Mtime: time.Unix(mtime, 0)}
	if k, ok := w.index[rel]; ok {
		w.files[k] = e
	} else {
		w.index[rel] = len(w.files)
		w.files = append(w.files, e)
	}
	if w.v.file != nil {
		return w.v.file(e, tr)
	}
	return nil
}

// extract unpacks tarball p into dir (which must not exist) with cargo's
// rules: mode & 0o777 (the umask applies through open(2)), a later entry
// replacing an earlier file, whole-second mtimes, the generated files'
// fixed mtime, the marker written last. It returns the manifest it extracted.
// Every path is resolved beneath dir without following a link, and times
// are set through descriptors: a symlink another uid plants in the tree
// being written is an error, never a way out.
func extract(p string, c Crate, dir string) (*Manifest, error) {
	reg, rel, done, err := below(dir)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := reg.MkdirUmask(rel, 0o777); err != nil {
		return nil, err
	}
	d, err := reg.OpenDir(rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	made := map[string]bool{".": true}
	mkdirs := func(dir string) error {
		if made[dir] {
			return nil
		}
		for _, sub := range parents(dir) {
			if err := d.MkdirUmask(sub, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			made[sub] = true
		}
		return nil
	}
	m, err := walkTarball(p, c, tarVisitor{dir: mkdirs, file: func(e FileEntry, r io.Reader) error {
		if err := mkdirs(path.Dir(e.Path)); err != nil {
			return err
		}
		return extractFile(d, e, r)
	}})
	if err != nil {
		return nil, err
	}
	for _, name := range generatedFiles {
		if fi, err := d.Lstat(name); err == nil && fi.Mode().IsRegular() {
			_ = d.Chtimes(name, time.Time{}, time.Unix(generatedMtime, 0))
		}
	}
	if err := writeMarker(d); err != nil {
		return nil, err
	}
	return m, nil
}

// parents lists "a", "a/b", "a/b/c" for "a/b/c".
func parents(dir string) []string {
	var out []string
	for d := dir; d != "."; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// cargo sets these files' mtime after unpacking (older cargo packaged them
// without one); mtimes under the registry never trigger rebuilds, but the
// tree should be the one cargo makes.
var generatedFiles = []string{"Cargo.lock", "Cargo.toml", ".cargo_vcs_info.json"}

const generatedMtime = 1153704088

// extractFile writes one file below d. The walk has proven that an existing
// file is one of an earlier entry: like cargo, replace it.
func extractFile(d *safefs.Dir, e FileEntry, r io.Reader) error {
	perm := os.FileMode(e.Mode & 0o777)
	out, err := d.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		if err = d.Remove(e.Path); err == nil {
			out, err = d.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		}
	}
	if err != nil {
		return err
	}
	n, err := io.Copy(out, r)
	if err == nil && n == e.Size {
		// Through the descriptor just written: never a path.
		_ = safefs.Futimens(int(out.Fd()), e.Mtime, e.Mtime)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("%s: short read: %w", e.Path, io.ErrUnexpectedEOF)
	}
	return nil
}

func writeMarker(d *safefs.Dir) error {
	f, err := d.OpenFile(markerName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = f.WriteString(marker)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
