// Package safefstest records a directory tree so that a test can prove an
// operation left it exactly as it was: names, kinds, modes, owners, sizes,
// mtimes, link targets and content hashes.
package safefstest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Tree is a recorded tree: one line per entry, keyed by relative path.
type Tree map[string]string

// Snapshot records every entry under dir (dir itself included as "."),
// never following a symlink.
func Snapshot(dir string) (Tree, error) {
	t := Tree{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%v uid=%d gid=%d size=%d mtime=%d", fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " sha256=" + hex.EncodeToString(sum[:])
		}
		t[rel] = line
		return nil
	})
	return t, err
}

// Diff lists what differs between two snapshots, one line each; empty when
// they are the same.
func Diff(before, after Tree) string {
	var out []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			out = append(out, "removed "+k+": "+v)
		} else if w != v {
			out = append(out, "changed "+k+": "+v+" => "+w)
		}
	}
	for k, w := range after {
		if _, ok := before[k]; !ok {
			out = append(out, "added "+k+": "+w)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// Unchanged fails t (via errorf) when dir differs from before.
func Unchanged(errorf func(string, ...any), dir string, before Tree) {
	after, err := Snapshot(dir)
	if err != nil {
		errorf("snapshot %s: %v", dir, err)
		return
	}
	if d := Diff(before, after); d != "" {
		lines := strings.Split(d, "\n")
		if len(lines) > 12 {
			lines = append(lines[:12], fmt.Sprintf("... and %d more", len(lines)-12))
		}
		errorf("%s changed:\n%s", dir, strings.Join(lines, "\n"))
	}
}
