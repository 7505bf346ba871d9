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
	"time"

	"golang.org/x/sys/unix"
)

// The repair journal: one small record per repaired crate, in
// registry/.cargo-shim/repaired/. Cargo never compares the mtimes of
// registry sources, so what a target dir compiled from a damaged extraction
// stays "fresh" after the shim repaired it; the journal tells the next run
// in that target dir which crates to rebuild (package shim/targetdir).
//
// The records sit flat in one directory so that its own stamp changes with
// every repair: a run that finds the stamp its target dir last saw reads
// nothing else. A record is written per uid (a sticky shared directory does
// not let one uid replace another's file).

// repairedHeader opens every repair record; the number is its format.
const repairedHeader = "cargo-shim-repaired 1"

// maxRepairRecords bounds what a run reads of the journal (another uid may
// fill it): past that many, the oldest are ignored.
const maxRepairRecords = 10000

// RepairedDir holds the repair journal.
func (r Registry) RepairedDir() string { return filepath.Join(r.ShimDir(), "repaired") }

// Repaired is one journal record: crate Name (of Regdir) had its extraction
// replaced or removed at At (the repairing host's clock).
type Repaired struct {
	Regdir string
	Name   string
	At     time.Time
}

// noteRepaired journals that i's extraction was replaced or removed. A run
// that cannot write it says so in its debug log only: the repair itself
// stands.
func (r Registry) noteRepaired(i Instance, at time.Time) error {
	name := fmt.Sprintf("%s.%s.%d", i.Regdir, i.Dir(), os.Geteuid())
	data := fmt.Sprintf("%s\nregdir %s\nname %s\nversion %s\nat %d\n", repairedHeader, i.Regdir, i.Name, i.Version, at.UnixNano())
	return r.writeFileAtomic(filepath.Join(r.RepairedDir(), name), []byte(data))
}

// journaled: the repair actions that change what cargo compiles.
func journaled(kind string) bool {
	return kind == ActReextracted || kind == ActExtracted || kind == ActMovedAside
}

// repairStampWaits bounds how many racy windows RepairStamp waits out: any
// uid may touch the journal directory (it is shared, or another uid made
// it) and keep its stamp recent forever, while the run holds its locks.
const repairStampWaits = 3

// RepairStamp is the journal directory's identity and times, one lstat: ""
// when no repair was ever journaled. A stamp too recent to prove that no
// later repair shares it (the rule of state records) is waited out first,
// at most repairStampWaits racy windows; settled is false when it is still
// too recent then: the caller syncs without recording the stamp, so the
// next run looks again (a stamp kept recent costs rebuild checks, never a
// wait beyond the bound).
func (r Registry) RepairStamp() (stamp string, settled bool) {
	for wait := 0; ; wait++ {
		var st unix.Stat_t
		if err := r.lstatRaw(r.RepairedDir(), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return "", true
		}
		s := stampOf(&st)
		stamp = fmt.Sprintf("%d %d %d %d", st.Dev, s.Ino, s.Mtime, s.Ctime)
		age := time.Since(time.Unix(0, max(s.Mtime, s.Ctime)))
		if age < 0 || age >= racyWindow {
			return stamp, true
		}
		if wait == repairStampWaits {
			return stamp, false
		}
		time.Sleep(racyWindow - age)
	}
}

// Repairs reads the journal. Any uid may have written a record: what one
// can make a run do is rebuild crates of the names it lists, which a clean
// build does anyway, so records are not held to the owner rule of state
// records; malformed ones are skipped.
func (r Registry) Repairs() ([]Repaired, error) {
	ents, err := r.readDir(r.RepairedDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Repaired
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := r.readFile(filepath.Join(r.RepairedDir(), e.Name()), 4096)
		if err != nil {
			continue
		}
		if rec, ok := parseRepaired(data); ok {
			out = append(out, rec)
		}
		if len(out) == maxRepairRecords {
			break
		}
	}
	return out, nil
}

// parseRepaired reads one record; unknown lines are skipped, so a later
// format may add some.
func parseRepaired(data []byte) (Repaired, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != repairedHeader {
		return Repaired{}, false
	}
	var rec Repaired
	var version string
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "regdir":
			rec.Regdir = v
		case "name":
			rec.Name = v
		case "version":
			version = v
		case "at":
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Repaired{}, false
			}
			rec.At = time.Unix(0, ns)
		}
	}
	ok := ValidRegdir(rec.Regdir) && validCrate(Crate{Name: rec.Name, Version: version}) && !rec.At.IsZero()
	return rec, ok
}
