package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// IndexEntry is one version of a crate in a registry's index.
type IndexEntry struct {
	Name        string `json:"name"`
	Vers        string `json:"vers"`
	Cksum       string `json:"cksum"`
	Yanked      bool   `json:"yanked"`
	RustVersion string `json:"rust_version"`
	// Trusted: the cache file is one no less-trusted uid could have
	// written (trust.go); else Cksum is a hint only.
	Trusted bool `json:"-"`
}

// indexCacheVersion is the first byte of cargo's index cache files
// (sources/registry/index/cache.rs: CURRENT_CACHE_VERSION); a file of
// another version is one this cargo would not read either.
const indexCacheVersion = 3

// indexDepPath is the index's layout for a crate name: 1/a, 2/ab, 3/a/abc,
// ab/cd/abcd... Cargo keys its cache by the lowercased name.
func indexDepPath(name string) string {
	name = strings.ToLower(name)
	switch len(name) {
	case 1:
		return "1/" + name
	case 2:
		return "2/" + name
	case 3:
		return "3/" + name[:1] + "/" + name
	}
	return name[:2] + "/" + name[2:4] + "/" + name
}

// IndexCachePath is cargo's cached index file for name in regdir.
func (r Registry) IndexCachePath(regdir, name string) string {
	return filepath.Join(r.Root, "index", regdir, ".cache", filepath.FromSlash(indexDepPath(name)))
}

// ReadIndexCache returns the versions cargo's cached index of regdir lists
// for name. The file is cargo's: a version byte, the index schema version
// (4 bytes), the index file's version, then version and JSON line pairs,
// each field ended by a NUL byte. Another uid may write it: it is read as a
// stream, each field and the whole bounded (bounds.go), and an entry with
// no valid checksum makes the file refused (the install is not planned).
func (r Registry) ReadIndexCache(regdir, name string) ([]IndexEntry, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%q is not a crate name", name)
	}
	p := r.IndexCachePath(regdir, name)
	f, err := openBelow(p) // beneath its registry: no link followed, no FIFO opened
	if err != nil {
		return nil, err
	}
	defer f.Close()
	trusted := r.vouched(f, p)
	in := bufio.NewReader(io.LimitReader(f, maxIndexCache+1))
	head := make([]byte, 5)
	if _, err := io.ReadFull(in, head); err != nil || head[0] != indexCacheVersion {
		return nil, fmt.Errorf("%s: not a cargo index cache of version %d", p, indexCacheVersion)
	}
	if _, err := indexField(in); err != nil { // the index file's version
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var out []IndexEntry
	for {
		vers, err := indexField(in)
		if err == io.EOF {
			return out, nil
		}
		var line []byte
		if err == nil {
			line, err = indexField(in)
		}
		if err == nil && len(out) == maxIndexVersions {
			err = fmt.Errorf("more than %d versions", maxIndexVersions)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		e, err := indexEntry(vers, line, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		e.Trusted = trusted
		out = append(out, e)
	}
}

// indexField reads one NUL-ended field of at most maxIndexField bytes; io.EOF
// only where a field would begin.
func indexField(in *bufio.Reader) ([]byte, error) {
	var b []byte
	for {
		chunk, err := in.ReadSlice(0)
		if len(b)+len(chunk) > maxIndexField+1 {
			return nil, fmt.Errorf("index field longer than %d bytes", maxIndexField)
		}
		b = append(b, chunk...)
		switch {
		case err == nil:
			return b[:len(b)-1], nil
		case err == io.EOF && len(b) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, errors.New("truncated index cache (larger than its bound, or a field not ended)")
		case err != bufio.ErrBufferFull:
			return nil, err
		}
	}
}

// indexEntry decodes one version's JSON line, which must be for name at
// vers, with a checksum that names something.
func indexEntry(vers, line []byte, name string) (IndexEntry, error) {
	var e IndexEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("version %s: %w", Printable(string(vers)), err)
	}
	if e.Vers != string(vers) || !strings.EqualFold(e.Name, name) {
		return e, fmt.Errorf("entry for %s %s does not match its key %s %s", Printable(e.Name), Printable(e.Vers), name, Printable(string(vers)))
	}
	if !validChecksum(e.Cksum) {
		return e, fmt.Errorf("%s %s: checksum %q is not a sha256", name, Printable(e.Vers), Printable(e.Cksum))
	}
	return e, nil
}

// readRegular reads a regular file of at most limit bytes below the
// registry, following no link on the way.
func readRegular(p string, limit int64) ([]byte, error) {
	f, err := openBelow(p) // beneath its registry: no link followed anywhere
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// PackagedLock reads the Cargo.lock that `cargo package` put into i's
// tarball: what `cargo install --locked` builds with. It reads the tarball,
// never the extraction (which may be the very thing that is damaged), and
// trusts it only when the tarball's sha256 is i's checksum.
func (r Registry) PackagedLock(i Instance) ([]byte, error) {
	tb := r.Tarball(i)
	if fi, err := r.lstat(tb); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", tb)
	}
	var lock []byte
	// A later Cargo.lock entry replaces an earlier one, as in cargo's
	// extraction.
	m, err := walkTarball(tb, i.Crate, tarVisitor{file: func(e FileEntry, body io.Reader) error {
		if e.Path != "Cargo.lock" {
			return nil
		}
		if e.Size > maxPackagedLock {
			return fmt.Errorf("%s: Cargo.lock is larger than %d bytes", tb, maxPackagedLock)
		}
		var err error
		lock, err = io.ReadAll(io.LimitReader(body, maxPackagedLock))
		return err
	}})
	switch {
	case err != nil:
		return nil, err
	case i.Checksum == "" || m.SHA256 != i.Checksum:
		return nil, fmt.Errorf("%s: sha256 %s is not the index's %s", tb, m.SHA256, i.Checksum)
	case lock == nil:
		return nil, fmt.Errorf("%s has no Cargo.lock", tb)
	}
	return lock, nil
}

// installMemoPath is where the plan input of an install of tools is
// remembered. The packaged Cargo.lock is a function of the tarball's bytes,
// which the index's checksum names, so a warm run need not read the tarball
// again. It lives with the plan records, and gc ages it out with them.
func (r Registry) installMemoPath(tools []Instance) string {
	h := sha256.New()
	for _, t := range tools {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", t.Regdir, t.Name, t.Version, t.Checksum)
	}
	return filepath.Join(r.PlanDir(), "install-"+hex.EncodeToString(h.Sum(nil)[:16]))
}

// InstallMemo returns what RecordInstallMemo recorded for tools, if no
// less-trusted uid could have written it (else the tarballs are read again).
func (r Registry) InstallMemo(tools []Instance) ([]byte, error) {
	p := r.installMemoPath(tools)
	if !r.trustedRecord(p) {
		return nil, fmt.Errorf("%s: another uid could have written it; not believed", p)
	}
	data, err := readRegular(p, maxPackagedLock)
	if err == nil {
		touchHourly(p)
	}
	return data, err
}

// RecordInstallMemo remembers the plan input of an install of tools. Only
// what came from verified tarballs may be recorded: a plan that lacks a
// tool's dependencies must be rebuilt once cargo has the tool.
func (r Registry) RecordInstallMemo(tools []Instance, data []byte) error {
	return r.writeFileAtomic(r.installMemoPath(tools), data)
}

// touchHourly marks a record as used, for gc, at most once an hour.
func touchHourly(p string) {
	f, err := openBelow(p)
	if err != nil {
		return
	}
	defer f.Close()
	// Through the descriptor: never a link's target.
	if fi, err := f.Stat(); err == nil && time.Since(fi.ModTime()) > time.Hour {
		now := time.Now()
		_ = safefs.Futimens(int(f.Fd()), now, now)
	}
}

// EncodeIndexCache writes entries in cargo's index cache format, as cargo
// 1.95 does (index schema version 2): the inverse of ReadIndexCache, for
// tests and benchmarks that stand in for cargo.
func EncodeIndexCache(entries []IndexEntry) []byte {
	var b bytes.Buffer
	b.WriteByte(indexCacheVersion)
	b.Write([]byte{2, 0, 0, 0})
	b.WriteString("etag: \"x\"\x00")
	for _, e := range entries {
		line, _ := json.Marshal(e)
		b.WriteString(e.Vers + "\x00" + string(line) + "\x00")
	}
	return b.Bytes()
}
