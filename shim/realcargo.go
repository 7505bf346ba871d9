package shim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ExecedEnv names the program a shim exec'd as "the real cargo". A shim that
// finds its own path there was reached through another shim's PATH search (a
// second copy of the shim): it must pass through, and search PATH only after
// its own entry, or the two would exec each other forever.
const ExecedEnv = "CARGO_SHIM_EXECED"

// ErrNoRealCargo is returned when no cargo other than the shim is found.
var ErrNoRealCargo = errors.New("cannot find the real cargo")

// FindRealCargo returns the cargo to exec: CARGO_SHIM_REAL_CARGO, else the
// first `cargo` on PATH that is not this shim (not the same file, not a
// symlink to it, not a byte-for-byte copy). after, if set, is a path whose
// PATH entry and everything before it are skipped.
func FindRealCargo(explicit, pathEnv, self, after string) (string, error) {
	selfInfo, selfErr := os.Stat(self)
	if explicit != "" {
		fi, err := os.Stat(explicit)
		if err != nil {
			return "", fmt.Errorf("%w: CARGO_SHIM_REAL_CARGO=%s: %v", ErrNoRealCargo, explicit, err)
		}
		if selfErr == nil && os.SameFile(fi, selfInfo) {
			return "", fmt.Errorf("%w: CARGO_SHIM_REAL_CARGO=%s is the shim itself", ErrNoRealCargo, explicit)
		}
		return explicit, nil
	}
	var afterInfo os.FileInfo
	if after != "" {
		afterInfo, _ = os.Stat(after)
	}
	skipping := afterInfo != nil
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, "cargo")
		fi, err := os.Stat(cand)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		if skipping {
			if os.SameFile(fi, afterInfo) {
				skipping = false
			}
			continue
		}
		if selfErr == nil && (os.SameFile(fi, selfInfo) || sameContent(cand, self, fi, selfInfo)) {
			continue
		}
		if !filepath.IsAbs(cand) {
			if abs, err := filepath.Abs(cand); err == nil {
				cand = abs
			}
		}
		return cand, nil
	}
	return "", fmt.Errorf("%w: no `cargo` on PATH other than the shim (%s); install cargo or set CARGO_SHIM_REAL_CARGO", ErrNoRealCargo, self)
}

// sameContent spots a copy of the shim. Files are compared only when their
// sizes match, which a real cargo or rustup proxy practically never does.
func sameContent(a, b string, ai, bi os.FileInfo) bool {
	if ai.Size() != bi.Size() {
		return false
	}
	da, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	db, err := os.ReadFile(b)
	return err == nil && bytes.Equal(da, db)
}

// resolvedSelf is the shim's own executable with symlinks resolved.
func resolvedSelf() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		return r
	}
	return exe
}
