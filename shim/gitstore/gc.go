package gitstore

import (
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
	if err := lockfile.MkdirShared(filepath.Dir(g.CheckoutLock(s))); err != nil {
		return rm, err
	}
	l, err := lockfile.Try(g.CheckoutLock(s), lockfile.Exclusive)
	if lockfile.IsBusy(err) {
		rm.Busy = true
		return rm, nil
	}
	if err != nil {
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
