package store

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The trust rule, kept here and nowhere else.
//
// Which bytes a crate must hold is named only by
//   - the checksums of the Cargo.lock of the workspace being built (a plan
//     of Source Trusted), and
//   - records no less-trusted uid could have written (trustedRecord): owned
//     by this uid or root, as is every directory from the registry down to
//     them, none of which lets another uid rename entries.
//
// Everything else is a hint: a plan or state record another uid could have
// written, an index-cache entry, a Cargo.lock packaged in a tarball, the
// tarball itself. A hint may make the shim look closer (check in full,
// report a difference), never make it replace, delete or trust anything.
// In code: a checksum is believed only through knownSum, a record only
// through trustedRecord or openTrusted, and the one write into src/ from a
// tarball (reextract) only follows mayExtract.

// Source says where the Cargo.lock bytes of a plan came from.
type Source int

const (
	// Trusted: the Cargo.lock of the workspace being built, the user's
	// own file, or one put together only from trusted records (cargo
	// install from an index cache and a memo trustedRecord vouches for);
	// its checksums are the truth.
	Trusted Source = iota
	// Hint: bytes the shim put together from what another uid may write
	// (cargo install's index cache, a memo): which crates to look at, no
	// checksum of them believed.
	Hint
)

// sum is the checksum of c a plan from src may carry: none from a hint.
func (src Source) sum(c Crate) string {
	if src != Trusted || !validChecksum(c.Checksum) {
		return ""
	}
	return c.Checksum
}

// sumsFrom: a plan record of a hint names no checksum.
func (p *Plan) sumsFrom(src Source) bool {
	for _, c := range p.crates {
		if c.Checksum != src.sum(c) {
			return false
		}
	}
	return true
}

// validChecksum: a sha256 as Cargo.lock writes it, 64 lowercase hex digits.
// An empty or malformed checksum names nothing and is never believed.
func validChecksum(s string) bool { return len(s) == 64 && validSHA256(s) }

// trustedUID: the uids whose writes this run believes, its own and root's.
func trustedUID(uid uint32) bool { return uid == 0 || uid == uint32(os.Geteuid()) }

// knownSum is the checksum i's tarball must have: the one i carries (set
// only from a Trusted plan), else the one a trusted state record names,
// else "" (none known: no tarball is believed).
func (r Registry) knownSum(i Instance) string {
	if validChecksum(i.Checksum) {
		return i.Checksum
	}
	return r.RecordedSHA256(i)
}

// mayExtract: the only bytes ever unpacked into src/ by the shim are those
// of a tarball read to its end whose sha256 is a trusted checksum.
func (f Finding) mayExtract() bool {
	return f.tarballOK && f.trusted && validChecksum(f.Checksum) && f.Mismatch == ""
}

// recordable: a healthy extraction checked against a known-good manifest
// (a tarball of the trusted checksum, or a trusted record): recording the
// sha256 of any other tarball would launder it into "the known checksum".
// Nor with a truncated tarball kept for an offline build: its stamp in a
// record would let the next online run trust it instead of replacing it.
func (f Finding) recordable() bool {
	return f.Verdict == Healthy && f.ExtractionOK && f.manifest != nil && f.trusted && !f.exposedUnverified &&
		f.Mismatch == "" && f.TarballCorrupt == nil && validChecksum(f.manifest.SHA256)
}

// trustedRecord reports whether the record at p can only have been written
// by this uid or root: it is a regular file, and it and every directory from
// the registry down to it are owned by one of them, none of those
// directories letting another uid rename entries (group/world-writable
// without the sticky bit). Only such a record may prove an extraction broken
// (a file it lists is missing) or name the checksum a tarball must have.
// Any other record can only make the shim look closer: another uid could
// have forged it, and believing it would let that uid have a valid
// extraction deleted.
func (r Registry) trustedRecord(p string) bool {
	_, ok := r.trustedIno(p)
	return ok
}

// trustedIno is trustedRecord, and the inode of the record it vouched for.
func (r Registry) trustedIno(p string) (uint64, bool) {
	d, rel, err := r.resolve(p)
	if err != nil {
		return 0, false
	}
	parts := strings.Split(rel, "/")
	var st unix.Stat_t
	for k := range parts {
		if d.LstatRaw(strings.Join(parts[:k+1], "/"), &st) != nil || !trustedUID(st.Uid) {
			return 0, false
		}
		want := uint32(unix.S_IFDIR)
		if k == len(parts)-1 {
			want = unix.S_IFREG
		}
		if st.Mode&unix.S_IFMT != want || want == unix.S_IFDIR && st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return 0, false
		}
	}
	return st.Ino, true
}

// openTrusted opens the record p only if trustedRecord vouches for it.
func (r Registry) openTrusted(p string) (*os.File, error) {
	f, err := r.open(p)
	if err != nil {
		return nil, err
	}
	if !r.vouched(f, p) {
		f.Close()
		return nil, fmt.Errorf("%s: another uid could have written it; not believed", p)
	}
	return f, nil
}

// vouched: f, opened from p, is the file trustedRecord vouches for at p.
func (r Registry) vouched(f *os.File, p string) bool {
	var st unix.Stat_t
	ino, ok := r.trustedIno(p)
	return ok && unix.Fstat(int(f.Fd()), &st) == nil && st.Ino == ino && trustedUID(st.Uid)
}
