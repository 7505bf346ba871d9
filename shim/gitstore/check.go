package gitstore

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// Verdict is what a check found.
type Verdict int

const (
	// Healthy: cargo will use the checkout as it is, and it is right.
	Healthy Verdict = iota
	// NeedsFetch: the db does not hold the commit (or there is no db): only
	// cargo, online, can fetch it.
	NeedsFetch
	// Missing: no usable checkout (none, no .cargo-ok, HEAD elsewhere).
	// Cargo would rebuild it itself, racing every runner that does the
	// same; the shim builds it from the db under its exclusive lock.
	Missing
	// Broken: .cargo-ok and HEAD say fresh, so cargo uses it as it is, but
	// its files differ from the commit's tree: every build fails.
	Broken
)

func (v Verdict) String() string {
	return [...]string{"healthy", "needs fetch", "missing", "broken"}[v]
}

// Finding is one source's check.
type Finding struct {
	Source   Source
	Checkout string
	Verdict  Verdict
	Problem  string // the first difference found, naming the path
	Fast     bool   // proven by the stamp record alone
}

// Level is how much a check looks at, in the order of the registry's
// levels (CARGO_SHIM_VERIFY).
type Level int

const (
	// Fast trusts a matching stamp record, else checks in Full.
	Fast Level = iota
	// Full compares every path, type, size and mode with the commit's tree.
	Full
	// Deep also compares every file's content with its object id.
	Deep
)

// Check looks at s's db and checkout without any lock (the caller's locks
// say what the result is worth).
func (g Store) Check(ctx context.Context, s Source, lvl Level) Finding {
	co := g.Checkout(s)
	f := Finding{Source: s, Checkout: co}
	deep := lvl == Deep
	if lvl == Fast && g.stampsMatch(s, co) && g.dbHoldsStamped(ctx, s) {
		f.Fast = true
		return f
	}
	t, err := tree(ctx, g.DB(s), s.Commit)
	if err != nil {
		f.Verdict, f.Problem = NeedsFetch, fmt.Sprintf("%s does not hold commit %s", g.DB(s), s.Commit)
		return f
	}
	f.Verdict, f.Problem = g.checkCheckout(ctx, s, co, t, deep, 0)
	if f.Verdict == Healthy {
		_ = g.recordStamps(s, co)
	}
	return f
}

// dbHolds: s's db opens and reads the commit object, which is what cargo
// looks at before it trusts a checkout. Otherwise cargo fetches (deleting
// and re-creating a damaged db, or spinning on it with
// net.git-fetch-with-cli) outside any lock, however healthy the checkout:
// the fast path then falls to the full check, which sends the source to
// FetchMissing.
func (g Store) dbHolds(ctx context.Context, s Source) bool {
	_, err := gitOut(ctx, "", "--git-dir="+g.DB(s), "rev-parse", "--verify", "-q", s.Commit+"^{commit}")
	return err == nil
}

// CheckAll checks every source, in parallel.
func (g Store) CheckAll(ctx context.Context, srcs []Source, lvl Level) []Finding {
	out := make([]Finding, len(srcs))
	lockfile.Parallel(lockfile.Workers(g.Root), len(srcs), func(n int) { out[n] = g.Check(ctx, srcs[n], lvl) })
	return out
}

// maxDepth bounds submodules of submodules.
const maxDepth = 8

// checkCheckout compares the checkout co of s with s's tree t.
func (g Store) checkCheckout(ctx context.Context, s Source, co string, t map[string]entry, deep bool, depth int) (Verdict, string) {
	if fi, err := os.Lstat(co); err != nil || !fi.IsDir() {
		return Missing, co + " does not exist"
	}
	if fi, err := os.Lstat(filepath.Join(co, ".cargo-ok")); err != nil || !fi.Mode().IsRegular() {
		return Missing, filepath.Join(co, ".cargo-ok") + " is missing (an interrupted checkout)"
	}
	// HEAD^{commit}: the commit object must be readable from the
	// checkout's own .git (its pack is hard-linked to the db's: a truncated
	// one makes cargo re-clone the checkout in place, under running builds).
	head, err := gitOut(ctx, "", "--git-dir="+filepath.Join(co, ".git"), "rev-parse", "--verify", "-q", "HEAD^{commit}")
	if h := strings.TrimSpace(string(head)); err != nil || h != s.Commit {
		return Missing, fmt.Sprintf("HEAD of %s is %q, not %s", co, h, s.Commit)
	}
	subs, _, err := submodules(ctx, g.DB(s), s, t)
	if err != nil {
		return Broken, fmt.Sprintf("cannot read the submodules of %s: %v", s, err)
	}
	// Submodules are compared below, each against its own db; one whose
	// db the shim cannot name, or that .gitmodules does not list (cargo
	// leaves it empty), is not compared.
	skip := map[string]bool{}
	for p, e := range t {
		if e.Mode == "160000" {
			skip[p] = true
		}
	}
	if p := compareTree(co, t, skip, deep); p != "" {
		return Broken, p
	}
	for _, sm := range subs {
		if sm.Skip || depth >= maxDepth {
			continue
		}
		st, err := tree(ctx, g.DB(sm.Src), sm.Src.Commit)
		if err != nil {
			// Its db cannot show what it should contain: not provably
			// broken, left as it is.
			continue
		}
		if v, p := g.checkCheckout(ctx, sm.Src, filepath.Join(co, sm.Path), st, deep, depth+1); v != Healthy {
			return Broken, "submodule " + sm.Path + ": " + p
		}
	}
	return Healthy, ""
}

// compareTree walks co (no link followed) and compares it with t: every
// path present with its type, size and executable bit, no path the commit
// does not have (a stray build.rs or src/bin/x.rs changes the build), and
// with deep every file's object id. The top-level .git and .cargo-ok and
// the submodules in skip are not part of the comparison.
func compareTree(co string, t map[string]entry, skip map[string]bool, deep bool) string {
	dirs := map[string]bool{}
	for p := range t {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	seen := 0
	var problem string
	_ = filepath.WalkDir(co, func(path string, d fs.DirEntry, err error) error {
		if problem != "" {
			return filepath.SkipAll
		}
		rel, _ := filepath.Rel(co, path)
		switch {
		case err != nil:
			problem = fmt.Sprintf("cannot read %s: %v", path, err)
			return filepath.SkipAll
		case rel == ".":
			return nil
		case rel == ".git" || rel == ".cargo-ok":
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case skip[rel]:
			seen++
			return filepath.SkipDir
		case d.IsDir() && dirs[rel]:
			return nil
		}
		e, ok := t[rel]
		if !ok {
			problem = fmt.Sprintf("%s is not in the commit", path)
			return filepath.SkipAll
		}
		seen++
		problem = compareEntry(path, e, deep)
		return nil
	})
	if problem != "" {
		return problem
	}
	if seen != len(t) {
		var missing []string
		for p := range t {
			if _, err := os.Lstat(filepath.Join(co, p)); err != nil {
				missing = append(missing, p)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			return fmt.Sprintf("%s is missing", filepath.Join(co, missing[0]))
		}
		return fmt.Sprintf("%s does not match its commit", co)
	}
	return ""
}

// compareEntry checks one path against its tree entry.
func compareEntry(path string, e entry, deep bool) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Sprintf("cannot stat %s: %v", path, err)
	}
	switch e.Mode {
	case "120000":
		target, err := os.Readlink(path)
		if err != nil || int64(len(target)) != e.Size {
			return fmt.Sprintf("%s is not the symlink the commit has", path)
		}
		if deep && blobID(strings.NewReader(target), e.Size, len(e.Oid)) != e.Oid {
			return fmt.Sprintf("%s points elsewhere than in the commit", path)
		}
		return ""
	case "100644", "100755":
	default:
		return fmt.Sprintf("%s: unexpected mode %s in the commit", path, e.Mode)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a regular file", path)
	}
	if fi.Size() != e.Size {
		return fmt.Sprintf("%s has %d bytes, the commit %d", path, fi.Size(), e.Size)
	}
	if exec := fi.Mode()&0o100 != 0; exec != (e.Mode == "100755") {
		return fmt.Sprintf("%s has mode %v, the commit %s", path, fi.Mode().Perm(), e.Mode)
	}
	if deep {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Sprintf("cannot read %s: %v", path, err)
		}
		defer f.Close()
		if blobID(f, e.Size, len(e.Oid)) != e.Oid {
			return fmt.Sprintf("the content of %s differs from the commit", path)
		}
	}
	return ""
}

// blobID is git's object id of a blob of size bytes read from r (SHA-1,
// or SHA-256 for a 64-digit repository).
func blobID(r io.Reader, size int64, idLen int) string {
	var h hash.Hash = sha1.New()
	if idLen == 64 {
		h = sha256.New()
	}
	fmt.Fprintf(h, "blob %d\x00", size)
	if n, err := io.Copy(h, io.LimitReader(r, size+1)); err != nil || n != size {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
