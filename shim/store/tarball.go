package store

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
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

// maxUnpacked mirrors cargo's cap: max(512 MiB, 20x the compressed size).
func maxUnpacked(compressed int64) int64 {
	if n := compressed * 20; n > 512<<20 {
		return n
	}
	return 512 << 20
}

// ReadManifest reads the whole tarball at p, checking every entry the way an
// extraction would and hashing the raw bytes.
func ReadManifest(p string, c Crate) (*Manifest, error) {
	m := &Manifest{}
	err := walkTarball(p, c, func(e FileEntry, r io.Reader) error {
		m.Files = append(m.Files, e)
		return nil
	}, func(sum string) { m.SHA256 = sum })
	if err != nil {
		return nil, err
	}
	m.Dirs = dirsOf(m.Files)
	return m, nil
}

func dirsOf(files []FileEntry) []string {
	set := map[string]bool{".": true}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if set[d] {
				break
			}
			set[d] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out) // "." sorts before any name
	return out
}

// walkTarball streams p's regular files to fn. Directory entries are implied
// by file paths (an empty directory is not damage cargo would notice).
func walkTarball(p string, c Crate, fn func(FileEntry, io.Reader) error, sum func(string)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%s: empty file: %w", p, ErrCorrupt)
	}
	h := sha256.New()
	raw := io.TeeReader(f, h)
	zr, err := gzip.NewReader(raw)
	if err != nil {
		return fmt.Errorf("%s: %v: %w", p, err, ErrCorrupt)
	}
	// One member only: cargo ignores what follows it, and so do we.
	zr.Multistream(false)
	prefix := c.Dir() + "/"
	limit := maxUnpacked(fi.Size())
	var total int64
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %v: %w", p, err, ErrCorrupt)
		}
		name := hdr.Name
		rel, ok := strings.CutPrefix(name, prefix)
		if !ok && name+"/" != prefix {
			return fmt.Errorf("%s: entry %q is outside %s: %w", p, name, prefix, ErrUnsafe)
		}
		rel = strings.TrimSuffix(rel, "/")
		if rel == "" && hdr.Typeflag == tar.TypeDir {
			continue
		}
		for _, part := range strings.Split(rel, "/") {
			if part == ".." || part == "." || part == "" {
				return fmt.Errorf("%s: entry %q has a %q component: %w", p, name, part, ErrUnsafe)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg, tar.TypeRegA:
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("%s: entry %q is not a regular file or directory (type %q): %w", p, name, hdr.Typeflag, ErrUnsafe)
		}
		if rel == markerName {
			// cargo skips a packaged marker; so must we, or a crate could
			// ship a "complete" marker for a half extraction.
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return fmt.Errorf("%s: %v: %w", p, err, ErrCorrupt)
			}
			continue
		}
		total += hdr.Size
		if total > limit {
			return fmt.Errorf("%s: unpacked size exceeds %d bytes: %w", p, limit, ErrUnsafe)
		}
		e := FileEntry{Path: rel, Size: hdr.Size, Mode: hdr.Mode, Mtime: hdr.ModTime}
		if err := fn(e, tr); err != nil {
			return err
		}
		// fn may not consume the body; reading the rest proves it is there.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("%s: %v: %w", p, err, ErrCorrupt)
		}
	}
	// A broken gzip trailer or garbage after the member: cargo accepts both,
	// so they are not corruption; the checksum will tell.
	_, _ = io.Copy(io.Discard, zr)
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return err
	}
	sum(hex.EncodeToString(h.Sum(nil)))
	return nil
}

// extract unpacks tarball p into dir (which must not exist) with cargo's
// rules: mode & 0o777 (the umask applies through open(2)), tar mtimes kept,
// the marker written last. It returns the manifest it extracted.
func extract(p string, c Crate, dir string) (*Manifest, error) {
	if err := os.Mkdir(dir, 0o777); err != nil {
		return nil, err
	}
	m := &Manifest{}
	made := map[string]bool{".": true}
	err := walkTarball(p, c, func(e FileEntry, r io.Reader) error {
		parent := path.Dir(e.Path)
		if !made[parent] {
			if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(parent)), 0o777); err != nil {
				return err
			}
			for d := parent; d != "."; d = path.Dir(d) {
				made[d] = true
			}
		}
		dst := filepath.Join(dir, filepath.FromSlash(e.Path))
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(e.Mode&0o777))
		if err != nil {
			return err
		}
		n, err := io.Copy(out, r)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s: %v: %w", p, err, ErrCorrupt)
			}
			return err
		}
		if n != e.Size {
			return fmt.Errorf("%s: %s: short read: %w", p, e.Path, ErrCorrupt)
		}
		if !e.Mtime.IsZero() {
			_ = os.Chtimes(dst, e.Mtime, e.Mtime)
		}
		m.Files = append(m.Files, e)
		return nil
	}, func(sum string) { m.SHA256 = sum })
	if err != nil {
		return nil, err
	}
	m.Dirs = dirsOf(m.Files)
	if err := writeMarker(filepath.Join(dir, markerName)); err != nil {
		return nil, err
	}
	return m, nil
}

func writeMarker(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = f.WriteString(marker)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
