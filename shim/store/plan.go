package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// A Plan is step 2 of a run: the planned crates, where each one lives, and
// what to lock. Building one costs a TOML parse of Cargo.lock, a readdir of
// every regdir and a state file per crate. A warm run instead reads one plan
// record, keyed by the Cargo.lock's bytes: the crates with their recorded
// directory stamps, and the registry's top directories' stamps (a regdir
// added or removed changes them). Cost then grows with the crates used, not
// with the registry: one read and the lstats the check needs anyway.
type Plan struct {
	key       string
	crates    []Crate
	instances []Instance
	cold      []Crate  // in no regdir yet: cargo will download them
	indexed   []string // regdirs with an index: where cold crates will land
	regdirs   []string
	top       [3]stamp
	// stamps are the recorded stamps of each instance, from the plan record
	// or the per-crate state; nil when the instance has none yet.
	stamps map[Instance]*State
	// viaState: instances whose warm check is their state record's, which
	// holds the file stamps root needs for an extraction another uid can
	// write (exposed.go); recorded as -2.
	viaState map[Instance]bool
	cached   bool // came from a plan record whose stamps still matched
	// skipped describes Cargo.lock entries whose name or version cargo
	// would not accept; a plan with any is never recorded, so that every
	// run warns about them.
	skipped []string
}

var topDirs = [3]string{"src", "cache", "index"}

func planKey(lockData []byte) string {
	sum := sha256.Sum256(lockData)
	return hex.EncodeToString(sum[:16])
}

// PlanDir holds plan records.
func (r Registry) PlanDir() string { return filepath.Join(r.ShimDir(), "state", "plans") }

func (r Registry) topStamps() [3]stamp {
	var out [3]stamp
	for n, d := range topDirs {
		var st unix.Stat_t
		if r.lstatRaw(filepath.Join(r.Root, d), &st) == nil {
			out[n] = stampOf(&st)
			out[n].Size = 0 // a directory's size says nothing useful
		}
	}
	return out
}

// planKeyOf names the plan record of lockData: a hint's records are
// another family, never read as a workspace's.
func planKeyOf(lockData []byte, src Source) string {
	if src == Hint {
		return planKey(append([]byte("hint\x00"), lockData...))
	}
	return planKey(lockData)
}

// buildPlan is the slow way: parse Cargo.lock and look at the registry.
func (r Registry) buildPlan(lockData []byte, lockPath string, src Source) (*Plan, error) {
	crates, skipped, err := ParseCargoLockEntries(lockData, lockPath)
	if err != nil {
		return nil, err
	}
	for k := range crates {
		crates[k].Checksum = src.sum(crates[k])
	}
	p := &Plan{key: planKeyOf(lockData, src), crates: crates, top: r.topStamps(), stamps: map[Instance]*State{}, skipped: skipped}
	p.regdirs = r.Regdirs()
	for _, d := range p.regdirs {
		if _, err := r.lstat(filepath.Join(r.Root, "index", d)); err == nil {
			p.indexed = append(p.indexed, d)
		}
	}
	for _, c := range crates {
		found := r.Locate(c, p.regdirs)
		if len(found) == 0 {
			p.cold = append(p.cold, c)
		}
		p.instances = append(p.instances, found...)
	}
	return p, nil
}

// loadPlan reads the plan record for lockData and checks that the registry
// still has the shape it describes. ok is false when it must be rebuilt:
// also when another uid could have written the record (it would name the
// checksums), or when it is larger than lockData allows.
func (r Registry) loadPlan(lockData []byte, src Source) (*Plan, bool) {
	key := planKeyOf(lockData, src)
	path := filepath.Join(r.PlanDir(), key)
	f, err := r.openTrusted(path)
	if err != nil {
		return nil, false
	}
	fi, err := f.Stat()
	var data []byte
	if err == nil {
		// The size is another uid's to choose: never allocate by it.
		data, err = io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	}
	// The record's mtime is its last use, for gc; touched at most hourly,
	// through the descriptor read (the path may name another file by now).
	if err == nil && time.Since(fi.ModTime()) > time.Hour {
		now := time.Now()
		_ = safefs.Futimens(int(f.Fd()), now, now)
	}
	f.Close()
	if err != nil || len(data) > maxRecordSize {
		return nil, false
	}
	p, err := parsePlan(data)
	if err != nil || p.key != key || p.top != r.topStamps() || !r.planBounded(p, lockData) || !p.sumsFrom(src) {
		return nil, false
	}
	// A cold crate that has appeared since must be checked and pinned.
	for _, c := range p.cold {
		if len(r.Locate(c, p.regdirs)) > 0 {
			return nil, false
		}
	}
	p.cached = true
	return p, true
}

// lockPaths: every instance, and every cold crate under every regdir with an
// index (where cargo will put it). Cold crates on a registry with no index
// yet (a new or wiped one) have no regdir to be pinned under: the plan then
// pins the cold lock, and gc removes no crate while it is held.
func (r Registry) lockPaths(p *Plan) []string {
	out := make([]string, 0, 1+len(p.instances)+len(p.cold)*len(p.indexed))
	if len(p.cold) > 0 && len(p.indexed) == 0 {
		out = append(out, r.ColdLock())
	}
	locks := filepath.Join(r.ShimDir(), "locks")
	for _, i := range p.instances {
		out = append(out, lockPathIn(locks, i))
	}
	for _, c := range p.cold {
		for _, d := range p.indexed {
			out = append(out, lockPathIn(locks, Instance{Crate: c, Regdir: d}))
		}
	}
	return out
}

// The plan record is binary: it is read on every warm run, and a text
// record of 400 crates (228 KB, 3,000 lines) took 0.76 ms to parse.
// Layout: header, key, 3 top stamps, regdirs, crates, cold crates, then per
// instance its regdir and crate indexes, recorded time (-1: no stamps) and
// stamps. Integers are little-endian fixed width, strings uvarint-prefixed.
const planMagic = "cargo-shim-plan 2\n"

// viaStateRec is an instance's recorded time in a plan record when its
// warm check reads its state record instead (Plan.viaState).
const viaStateRec = -2

type planWriter struct{ b bytes.Buffer }

func (w *planWriter) u64(v uint64) {
	var x [8]byte
	binary.LittleEndian.PutUint64(x[:], v)
	w.b.Write(x[:])
}
func (w *planWriter) i64(v int64) { w.u64(uint64(v)) }
func (w *planWriter) uv(v int) {
	var x [binary.MaxVarintLen64]byte
	w.b.Write(x[:binary.PutUvarint(x[:], uint64(v))])
}
func (w *planWriter) str(s string) { w.uv(len(s)); w.b.WriteString(s) }
func (w *planWriter) stamp(s stamp) {
	w.u64(s.Ino)
	w.i64(s.Size)
	w.i64(s.Mtime)
	w.i64(s.Ctime)
}

// savePlan writes the plan record from p.stamps.
func (r Registry) savePlan(p *Plan) error {
	var w planWriter
	w.b.WriteString(planMagic)
	w.str(p.key)
	for _, t := range p.top {
		w.stamp(t)
	}
	regIdx := map[string]int{}
	w.uv(len(p.regdirs))
	for n, d := range p.regdirs {
		regIdx[d] = n
		w.str(d)
		if contains(p.indexed, d) {
			w.b.WriteByte(1)
		} else {
			w.b.WriteByte(0)
		}
	}
	crateIdx := map[Crate]int{}
	w.uv(len(p.crates))
	for n, c := range p.crates {
		crateIdx[c] = n
		w.str(c.Name)
		w.str(c.Version)
		w.str(c.Checksum)
	}
	w.uv(len(p.cold))
	for _, c := range p.cold {
		w.uv(crateIdx[c])
	}
	w.uv(len(p.instances))
	for _, i := range p.instances {
		w.uv(regIdx[i.Regdir])
		w.uv(crateIdx[i.Crate])
		s := p.stamps[i]
		if p.viaState[i] {
			w.i64(viaStateRec)
			continue
		}
		if s == nil {
			w.i64(-1)
			continue
		}
		w.i64(s.Recorded)
		w.stamp(s.Marker)
		if s.Tarball != nil {
			w.b.WriteByte(1)
			w.stamp(*s.Tarball)
		} else {
			w.b.WriteByte(0)
		}
		w.uv(len(s.Dirs))
		for _, d := range s.Dirs {
			w.str(d.Rel)
			w.stamp(d.stamp)
		}
	}
	return r.writeFileAtomic(filepath.Join(r.PlanDir(), p.key), w.b.Bytes())
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

var errBadPlan = errors.New("bad plan record")

// planReader decodes; any overrun sets bad and yields zeros.
type planReader struct {
	s   string // the whole record: strings below are substrings of it
	bad bool
}

func (r *planReader) u64() uint64 {
	if len(r.s) < 8 {
		r.bad = true
		return 0
	}
	v := uint64(r.s[0]) | uint64(r.s[1])<<8 | uint64(r.s[2])<<16 | uint64(r.s[3])<<24 |
		uint64(r.s[4])<<32 | uint64(r.s[5])<<40 | uint64(r.s[6])<<48 | uint64(r.s[7])<<56
	r.s = r.s[8:]
	return v
}
func (r *planReader) i64() int64 { return int64(r.u64()) }
func (r *planReader) uv() int {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		if len(r.s) == 0 {
			r.bad = true
			return 0
		}
		c := r.s[0]
		r.s = r.s[1:]
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if v > 1<<31 {
				r.bad = true
				return 0
			}
			return int(v)
		}
	}
	r.bad = true
	return 0
}
func (r *planReader) byte1() byte {
	if len(r.s) < 1 {
		r.bad = true
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}
func (r *planReader) str() string {
	n := r.uv()
	if r.bad || n > len(r.s) {
		r.bad = true
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}
func (r *planReader) stamp() stamp {
	return stamp{Ino: r.u64(), Size: r.i64(), Mtime: r.i64(), Ctime: r.i64()}
}

func parsePlan(data []byte) (*Plan, error) {
	if !bytes.HasPrefix(data, []byte(planMagic)) {
		return nil, errBadPlan
	}
	r := &planReader{s: string(data[len(planMagic):])}
	p := &Plan{key: r.str(), stamps: map[Instance]*State{}, viaState: map[Instance]bool{}}
	for n := range p.top {
		p.top[n] = r.stamp()
	}
	nreg := r.uv()
	for k := 0; k < nreg && !r.bad; k++ {
		d := r.str()
		if !ValidRegdir(d) {
			return nil, errBadPlan
		}
		p.regdirs = append(p.regdirs, d)
		if r.byte1() == 1 {
			p.indexed = append(p.indexed, d)
		}
	}
	// Each count is checked against the bytes left, at the smallest
	// encoding of one item, before anything is allocated for it.
	ncrates := r.uv()
	if r.bad || ncrates > len(r.s)/3 {
		return nil, errBadPlan
	}
	p.crates = make([]Crate, 0, ncrates)
	for k := 0; k < ncrates && !r.bad; k++ {
		c := Crate{Name: r.str(), Version: r.str(), Checksum: r.str()}
		if !r.bad && (!validCrate(c) || c.Checksum != "" && !validChecksum(c.Checksum)) {
			return nil, errBadPlan
		}
		p.crates = append(p.crates, c)
	}
	ncold := r.uv()
	if ncold > len(p.crates) {
		return nil, errBadPlan
	}
	for k := 0; k < ncold && !r.bad; k++ {
		c := r.uv()
		if c >= len(p.crates) {
			return nil, errBadPlan
		}
		p.cold = append(p.cold, p.crates[c])
	}
	if err := parsePlanInstances(r, p); err != nil {
		return nil, err
	}
	if r.bad || len(r.s) != 0 {
		return nil, errBadPlan
	}
	return p, nil
}

// parsePlanInstances reads the instances and their recorded stamps.
func parsePlanInstances(r *planReader, p *Plan) error {
	ninst := r.uv()
	if r.bad || ninst > len(r.s)/10 {
		return errBadPlan
	}
	p.instances = make([]Instance, 0, ninst)
	// One allocation each for the states and their tarball stamps, and the
	// map sized once: the warm path parses this record on every run.
	p.stamps = make(map[Instance]*State, ninst)
	states := make([]State, ninst)
	tarballs := make([]stamp, ninst)
	for k := 0; k < ninst && !r.bad; k++ {
		d, c := r.uv(), r.uv()
		if d >= len(p.regdirs) || c >= len(p.crates) {
			return errBadPlan
		}
		i := Instance{Crate: p.crates[c], Regdir: p.regdirs[d]}
		p.instances = append(p.instances, i)
		rec := r.i64()
		if rec == viaStateRec {
			p.viaState[i] = true
		}
		if rec < 0 {
			continue
		}
		s := &states[k]
		*s = State{Recorded: rec}
		s.Marker = r.stamp()
		if r.byte1() == 1 {
			tarballs[k] = r.stamp()
			s.Tarball = &tarballs[k]
		}
		nd := r.uv()
		if r.bad || nd == 0 || nd > len(r.s)/33 {
			return errBadPlan
		}
		s.Dirs = make([]dirStamp, nd)
		for j := range s.Dirs {
			s.Dirs[j].Rel = r.str()
			s.Dirs[j].stamp = r.stamp()
			if !r.bad && !validRecordedDir(s.Dirs[j].Rel, j == 0) {
				return errBadPlan
			}
		}
		p.stamps[i] = s
	}
	return nil
}

// savePlanFromStates fills the plan's stamps from the per-crate states (all
// just verified) and writes the plan record.
func (r Registry) savePlanFromStates(p *Plan) error {
	// p.top stays as read before the plan was built: had a regdir appeared
	// since, the next run must not trust this plan's list of them.
	p.stamps, p.viaState = map[Instance]*State{}, map[Instance]bool{}
	for _, i := range p.instances {
		if s, err := readState(r.StatePath(i), false); err == nil {
			s.Files = nil
			p.stamps[i] = s
			p.viaState[i] = len(s.Exposed) > 0
		}
	}
	return r.savePlan(p)
}

// RemoveStalePlans deletes plan records unused for longer than maxAge (a
// record in use is touched hourly; a removed one is rebuilt by the next run),
// and records whose registry top directories have changed since (a wipe, a
// re-created registry, a regdir added): loadPlan never trusts them again.
func (r Registry) RemoveStalePlans(maxAge time.Duration, dry bool) (n int, freed int64) {
	ents, err := r.readDir(r.PlanDir())
	if err != nil {
		return 0, 0
	}
	top := r.topStamps()
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(r.PlanDir(), e.Name())
		if time.Since(fi.ModTime()) <= maxAge && !planOutdated(p, top) {
			continue
		}
		size := r.Blocks(p)
		if dry || r.unlink(p) == nil {
			n++
			freed += size
		}
	}
	return n, freed
}

// planOutdated: the record was made for registry top directories that are
// gone. An unreadable record is left to the age rule.
func planOutdated(p string, top [3]stamp) bool {
	data, err := readRecord(p)
	if err != nil {
		return false
	}
	pl, err := parsePlan(data)
	return err == nil && pl.top != top
}
