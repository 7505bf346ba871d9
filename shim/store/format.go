package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The formats this shim reads and writes in registry/.cargo-shim/, each with
// its own version, so that two releases can share a registry during a
// rolling upgrade. Records carry their version in their first line (a
// reader skips a record whose version it does not know and checks the
// crate in full, as if there were none); the lock layout cannot (a lock is
// an empty file), so registry/.cargo-shim/format declares it. A release
// that changes where or how per-crate locks are taken must raise
// LockLayout; a shim that finds another layout declared runs cargo without
// its protection rather than take locks the other release does not see.
const (
	LockLayout      = 1 // locks/<regdir>/<name>-<version>.lock, flock shared/exclusive
	StateFormat     = 1 // stateHeader
	PlanFormat      = 2 // planMagic
	RepairedFormat  = 1 // repairedHeader
	formatHeader    = "cargo-shim-format 1"
	maxFormatRecord = 4096
)

// FormatPath declares the registry's formats.
func (r Registry) FormatPath() string { return filepath.Join(r.ShimDir(), "format") }

func formatRecord() []byte {
	return fmt.Appendf(nil, "%s\nlocks %d\nstate %d\nplan %d\nrepaired %d\n", formatHeader, LockLayout, StateFormat, PlanFormat, RepairedFormat)
}

// Formats reads the declared formats; nil when none is declared, or when
// the declaration is not trusted (another uid could have written it to
// make every run stand aside): an older release's registry, as far as this
// shim is concerned.
func (r Registry) Formats() (map[string]int, error) {
	p := r.FormatPath()
	data, err := r.readFile(p, maxFormatRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !r.trustedRecord(p) {
		return nil, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != formatHeader {
		return nil, fmt.Errorf("%s: not a cargo-shim format record", p)
	}
	out := map[string]int{}
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if n, err := strconv.Atoi(v); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// CheckFormat is a run's look at the declaration: an error when the
// registry declares a lock layout other than this shim's, and the
// declaration written when there is none (a record of the shim's
// directory, like a plan record: a failure to write it is no error).
func (r Registry) CheckFormat() error {
	f, err := r.Formats()
	if err != nil {
		return err
	}
	if f == nil {
		// None, or another uid's (not believed). Root's record is believed
		// by every uid, so root replaces another's once; a non-root run
		// leaves another runner uid's alone, or two of them would rewrite
		// it on every run.
		_, absent := r.lstat(r.FormatPath())
		if _, err := r.lstat(r.ShimDir()); err == nil && (absent != nil || os.Geteuid() == 0) {
			_ = r.writeFileAtomic(r.FormatPath(), formatRecord())
		}
		return nil
	}
	if n, ok := f["locks"]; ok && n != LockLayout {
		return fmt.Errorf("%s declares lock layout %d, this cargo-shim takes layout %d: runners would not see each other's locks (run one cargo-shim release on this registry, or the newer one everywhere)", r.FormatPath(), n, LockLayout)
	}
	return nil
}
