package gitstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// leftoverAge: a repair's temporary directory older than this belongs to a
// repair that was killed (one takes seconds), and is removed by gc.
const leftoverAge = time.Hour

// Removal is what gc did, or would do, with one checkout.
type Removal struct {
	Path     string
	LastUsed time.Time
	Bytes    int64
	Busy     bool // a build holds it: kept, whatever its age
	Removed  bool
}

// LastUsed is when a build through the shim last pinned s's checkout (the
// holder touches the lock file), else when the checkout was completed.
func (g Store) LastUsed(s Source) (time.Time, bool) {
	for _, p := range []string{g.CheckoutLock(s), filepath.Join(g.Checkout(s), ".cargo-ok")} {
		if fi, err := os.Lstat(p); err == nil {
			return fi.ModTime(), true
		}
	}
	return time.Time{}, false
}

// Collect removes s's checkout when it was last used before cutoff and no
// build holds it: its exclusive lock is taken without waiting (busy: kept),
// the age is read again under it (a build may have pinned it just before),
// and the checkout is renamed into the trash and removed. The db is kept:
// the checkout is rebuilt from it without network. dry decides and
// removes nothing.
func (g Store) Collect(s Source, cutoff time.Time, dry bool) (Removal, error) {
	rm := Removal{Path: g.Checkout(s)}
	used, ok := g.LastUsed(s)
	rm.LastUsed = used
	if !ok || !used.Before(cutoff) {
		return rm, nil
	}
	l, busy, err := tryExclusive(g.CheckoutLock(s))
	if busy || err != nil {
		rm.Busy = busy
		return rm, err
	}
	defer l.Release()
	if used, _ = g.LastUsed(s); !used.Before(cutoff) {
		return rm, nil
	}
	rm.Bytes = diskBytes(rm.Path)
	if dry {
		rm.Removed = true
		return rm, nil
	}
	rel, err := g.rel(rm.Path)
	if err != nil {
		return rm, err
	}
	g.ForgetStamps(s)
	if err := g.toTrash(rel); err != nil {
		return rm, err
	}
	rm.Removed = true
	return rm, nil
}

// Leftovers removes the temporary directories of killed repairs older than
// an hour: git/.cargo-shim-tmp-* and, from before repairs staged there,
// checkouts/<ident>/.cargo-shim-tmp-*. Directories are listed beneath
// git/'s descriptor; a symlink is never followed.
func (g Store) Leftovers(now time.Time, dry bool) (n int, bytes int64) {
	root, err := g.root()
	if err != nil {
		return 0, 0
	}
	defer root.Close()
	var rels []string
	add := func(dir string) {
		ents, _ := root.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), ".cargo-shim-tmp-") {
				rels = append(rels, filepath.Join(dir, e.Name()))
			}
		}
	}
	add(".")
	idents, _ := root.ReadDir("checkouts")
	for _, e := range idents {
		if e.IsDir() {
			add(filepath.Join("checkouts", e.Name()))
		}
	}
	for _, rel := range rels {
		fi, err := root.Lstat(rel)
		if err != nil || !fi.IsDir() || now.Sub(fi.ModTime()) < leftoverAge {
			continue
		}
		b := diskBytes(filepath.Join(g.Root, rel))
		if dry || g.toTrash(rel) == nil {
			n++
			bytes += b
		}
	}
	return n, bytes
}

// diskBytes is what a tree takes on disk: its allocated blocks (a file
// hard-linked from the db counts, though removing it frees nothing).
func diskBytes(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			} else {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// DBIdents lists the dbs present: db/<ident> directories (a name starting
// with a dot is not cargo's).
func (g Store) DBIdents() []string {
	ents, _ := os.ReadDir(filepath.Join(g.Root, "db"))
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// CheckoutsLeft counts what checkouts/<ident>/ holds, whatever it is: a
// directory gc could not name is still something a build may use.
func (g Store) CheckoutsLeft(ident string) int {
	ents, _ := os.ReadDir(filepath.Join(g.Root, "checkouts", ident))
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// DBLastUsed is the newest of the db lock's mtime (a pinning build
// refreshes it), the db directory's (a fetch renames refs in) and its
// FETCH_HEAD's (a fetch rewrites it in place).
func (g Store) DBLastUsed(ident string) time.Time {
	var newest time.Time
	db := g.DB(Source{Ident: ident})
	for _, p := range []string{g.DBLock(Source{Ident: ident}), db, filepath.Join(db, "FETCH_HEAD")} {
		if fi, err := os.Lstat(p); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	return newest
}

// CollectDB removes db/<ident> when no checkout of it is left (left, as
// counted by the caller: a dry run counts the checkouts it would remove as
// gone) and no build has used it since cutoff. A db is what a checkout is
// rebuilt from without network, as a tarball is for an extraction, so the
// caller passes the tarballs' age, not the checkouts'. The db's exclusive
// lock is taken without waiting (a build pins it shared, a fetch holds it
// exclusively: busy, kept); under it the age and, in a real run, the
// checkouts are looked at again. The db's stamp records go with it.
func (g Store) CollectDB(ident string, left int, cutoff time.Time, dry bool) (Removal, error) {
	s := Source{Ident: ident}
	rm := Removal{Path: g.DB(s), LastUsed: g.DBLastUsed(ident)}
	if left > 0 || !rm.LastUsed.Before(cutoff) {
		return rm, nil
	}
	l, busy, err := tryExclusive(g.DBLock(s))
	if busy || err != nil {
		rm.Busy = busy
		return rm, err
	}
	defer l.Release()
	if rm.LastUsed = g.DBLastUsed(ident); !rm.LastUsed.Before(cutoff) || (!dry && g.CheckoutsLeft(ident) > 0) {
		return rm, nil
	}
	rm.Bytes = diskBytes(rm.Path)
	if dry {
		rm.Removed = true
		return rm, nil
	}
	if err := g.toTrash(filepath.Join("db", ident)); err != nil {
		return rm, err
	}
	g.forgetDBStamps(ident)
	rm.Removed = true
	return rm, nil
}

// forgetDBStamps removes state/<ident>/*.db beneath git/'s descriptor.
func (g Store) forgetDBStamps(ident string) {
	root, err := g.root()
	if err != nil {
		return
	}
	defer root.Close()
	dir := filepath.Join(".cargo-shim", "state", ident)
	ents, _ := root.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".db") {
			_ = root.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// SubmoduleDBs names the dbs s's checkout took its submodules from (and
// theirs, to maxDepth), read from the commit's .gitmodules in s's db. A db
// gc cannot name is "unsure": a checkout found on disk carries no URL, so a
// relative submodule URL names no db; without s's db, a .gitmodules in the
// checkout is enough to be unsure. The caller then keeps every db.
func (g Store) SubmoduleDBs(ctx context.Context, s Source) (idents []string, unsure bool) {
	return g.submoduleDBs(ctx, s, 0)
}

func (g Store) submoduleDBs(ctx context.Context, s Source, depth int) (idents []string, unsure bool) {
	t, err := tree(ctx, g.DB(s), s.Commit)
	if err != nil {
		_, statErr := os.Lstat(filepath.Join(g.Checkout(s), ".gitmodules"))
		return nil, depth > 0 || statErr == nil
	}
	subs, unnamed, err := submodules(ctx, g.DB(s), s, t)
	if err != nil || len(unnamed) > 0 {
		return nil, true
	}
	for _, sm := range subs {
		if sm.Skip {
			continue
		}
		if depth >= maxDepth {
			return idents, true
		}
		idents = append(idents, sm.Src.Ident)
		deeper, u := g.submoduleDBs(ctx, sm.Src, depth+1)
		if u {
			return idents, true
		}
		idents = append(idents, deeper...)
	}
	return idents, false
}

// tryExclusive takes lock exclusively without waiting; busy: a build or a
// repair holds it.
func tryExclusive(lock string) (l *lockfile.Lock, busy bool, err error) {
	if err := lockfile.MkdirShared(filepath.Dir(lock)); err != nil {
		return nil, false, err
	}
	l, err = lockfile.Try(lock, lockfile.Exclusive)
	if lockfile.IsBusy(err) {
		return nil, true, nil
	}
	return l, false, err
}
