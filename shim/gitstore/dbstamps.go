package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// The warm path asks the db for the commit (dbHolds) because cargo reads
// the commit object before it trusts a checkout. Running git for that cost
// about 3.5 ms per source on every run; instead the answer is recorded with
// the stamps of what it read (HEAD, the pack directory and every file in
// it, the loose object's path, packed-refs), and git runs again only when
// one of them changed. What that cannot see (an object rewritten in place
// with its size and mtime kept) is what the deep level is for, as for the
// checkout's stamps.

const dbStampHeader = "cargo-shim-git-db 1"

// dbStampLines lists the stamps of what rev-parse reads to find commit in
// db: "ino size mtime ctime rel", or "- rel" for a path that is absent.
func dbStampLines(db, commit string) ([]string, int64, error) {
	rels := []string{"HEAD", "packed-refs", "objects", "objects/pack", filepath.Join("objects", commit[:2], commit[2:])}
	packs, err := os.ReadDir(filepath.Join(db, "objects", "pack"))
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, 0, len(packs))
	for _, e := range packs {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		rels = append(rels, filepath.Join("objects", "pack", n))
	}
	lines := make([]string, 0, len(rels))
	var newest int64
	for _, rel := range rels {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(db, rel), &st); err != nil {
			lines = append(lines, "- "+rel)
			continue
		}
		newest = max(newest, st.Mtim.Nano(), st.Ctim.Nano())
		lines = append(lines, fmt.Sprintf("%d %d %d %d %s", st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano(), rel))
	}
	return lines, newest, nil
}

func (g Store) dbStampPath(s Source) string { return g.StatePath(s) + ".db" }

// dbRecord is the record's text for the db as it is now; "" when a stamp
// is too fresh to vouch for (or the db cannot be listed).
func (g Store) dbRecord(s Source) string {
	now := time.Now().UnixNano()
	lines, newest, err := dbStampLines(g.DB(s), s.Commit)
	if err != nil || newest > now-racyWindow.Nanoseconds() {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%s\n%s\n", dbStampHeader, s.Commit, g.DB(s))
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// dbHoldsStamped is dbHolds, answered by a trusted record whose stamps all
// still match, else by git (and then recorded).
func (g Store) dbHoldsStamped(ctx context.Context, s Source) bool {
	now := g.dbRecord(s)
	if now != "" && g.trusted(g.dbStampPath(s)) {
		if data, err := readSmall(g.dbStampPath(s)); err == nil && string(data) == now {
			return true
		}
	}
	if !g.dbHolds(ctx, s) {
		return false
	}
	if now != "" {
		_ = g.writeState(s.Ident, s.Commit+".db", []byte(now))
	}
	return true
}

// writeState writes name into state/<ident> beneath git/'s descriptor, to
// a fresh O_EXCL temporary file renamed over it inside the held directory:
// another uid swapping state/<ident> for a symlink makes this fail, never
// write elsewhere.
func (g Store) writeState(ident, name string, data []byte) error {
	root, err := g.root()
	if err != nil {
		return err
	}
	defer root.Close()
	dir, err := root.MkdirAll(filepath.Join(".cargo-shim", "state", ident), safefs.Shared)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.WriteFile(name, data, 0o600)
}
