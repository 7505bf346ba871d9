package store

import (
	"os"
	"path"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// What root compiles is what the checksum names (trust.go). An extraction
// a less-trusted uid could write (it owns a directory or file of it, or
// the group or others may write one) can have its files rewritten in place,
// which no directory stamp shows. A root run therefore compares such an
// extraction's contents with the tarball of the trusted checksum before it
// first trusts it, records every file's stamps in root's own state record,
// and on later runs lstats those files: any stamp moved, and it compares
// again. Root-owned extractions keep the directory-stamp warm path.
// Non-root runs do not compare (a limitation named in docs/trust.md): what
// another runner uid can write, it could also have extracted.

// rootRun: this process is root, whose builds the comparison protects.
var rootRun = os.Geteuid() == 0

// exposedStat: a less-trusted uid could change what st describes.
func exposedStat(st *unix.Stat_t) bool { return !trustedUID(st.Uid) || st.Mode&0o022 != 0 }

// exposure is what a root run saw of an exposed extraction before it
// compared contents: the stamps of its directories (m.Dirs order) and files.
type exposure struct {
	dirs  []dirStamp
	files []dirStamp
}

// snapshot lstats every directory and file of m below root, and says
// whether any of them (or the marker) is exposed.
func (r Registry) snapshot(root string, m *Manifest) (*exposure, bool, error) {
	e := &exposure{}
	var st unix.Stat_t
	exposed := false
	look := func(rel string) error {
		err := r.lstatRaw(filepath.Join(root, filepath.FromSlash(rel)), &st)
		exposed = exposed || err == nil && exposedStat(&st)
		return err
	}
	for _, rel := range m.Dirs {
		if err := look(rel); err != nil {
			return nil, false, err
		}
		e.dirs = append(e.dirs, dirStamp{Rel: rel, stamp: stampOf(&st)})
	}
	for _, f := range m.Files {
		if err := look(f.Path); err != nil {
			return nil, false, err
		}
		e.files = append(e.files, dirStamp{Rel: f.Path, stamp: stampOf(&st)})
	}
	if err := look(markerName); err != nil {
		return nil, false, err
	}
	return e, exposed, nil
}

// verifyExposed is a root run's content check of an extraction a full
// check found complete: when it is exposed, every file is compared with the
// tarball of the trusted checksum, nothing else may be in it, and nothing
// may move meanwhile. Without such a tarball it is reported and left.
func (r Registry) verifyExposed(f *Finding, root string, level Level) {
	snap, exposed, err := r.snapshot(root, f.manifest)
	if err != nil || !exposed {
		return
	}
	if !f.tarballOK {
		f.exposedUnverified = true
		f.Unverified = "writable by another uid, and no tarball of the trusted checksum to compare it with; left as it is"
		f.Path = root
		return
	}
	if extra := r.extraEntry(root, f.manifest); extra != "" {
		f.broken(extra+" is not in the tarball (the extraction is writable by another uid)", filepath.Join(root, extra))
		return
	}
	if level < Deep {
		r.compareContents(f, root)
	}
	if f.Verdict == Broken {
		return
	}
	again, _, err := r.snapshot(root, f.manifest)
	if err != nil || !slices.Equal(again.dirs, snap.dirs) || !slices.Equal(again.files, snap.files) {
		f.broken("changed while it was compared with the tarball", root)
		return
	}
	f.exposure = snap
}

// extraEntry names the first entry of root that m does not list (cargo's
// marker aside): in an exposed extraction, another uid's file (a build.rs
// cargo would find) that no tarball of the checksum holds.
func (r Registry) extraEntry(root string, m *Manifest) string {
	known := map[string]bool{markerName: true}
	for _, d := range m.Dirs {
		known[d] = true
	}
	for _, fe := range m.Files {
		known[fe.Path] = true
	}
	for _, d := range m.Dirs {
		ents, err := r.readDir(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil {
			return d
		}
		for _, e := range ents {
			if rel := path.Join(d, e.Name()); !known[rel] {
				return rel
			}
		}
	}
	return ""
}

// exposedUnmoved is the warm check of an exposed extraction: the record is
// root's own and every file's stamps are as recorded when root compared it.
func (r Registry) exposedUnmoved(ext *safefs.Tree, s *State, racy int64) bool {
	if !s.vouched || len(s.Exposed) == 0 {
		return false
	}
	var st unix.Stat_t
	for _, x := range s.Exposed {
		if ext.Lstat(x.Rel, &st) != nil || stampOf(&st) != x.stamp || x.Ctime >= racy {
			return false
		}
	}
	return true
}
