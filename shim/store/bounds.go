package store

import (
	"bytes"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Every bound on what the store reads, in one place. Each file it reads may
// have been written by another uid (records, the index cache, tarballs,
// extractions) or by a crate's author: none is ever read or allocated for
// by the size it claims, and each has a cap far above real use. Past a cap
// the file is a hint refused (a record rebuilt, a crate not planned, a
// tarball left to cargo), never a reason to change anything.
const (
	// maxRecordSize: a state or plan record; 8 MiB is a state of 100,000
	// files or a plan of 20,000 crates.
	maxRecordSize = 8 << 20

	// maxLockSize: a Cargo.lock; those of thousands of packages are a few
	// hundred KB.
	maxLockSize = 16 << 20

	// maxPackagedLock: a Cargo.lock packaged in a tool's tarball (cargo
	// install), and the memo of one; the largest real ones are under 1 MB.
	maxPackagedLock = 16 << 20

	// maxIndexCache: one cargo index-cache file, read as a stream; the
	// largest crates.io entries are a few MB.
	maxIndexCache = 64 << 20
	// maxIndexField: one NUL-ended field of it (a version's JSON line).
	maxIndexField = 1 << 20
	// maxIndexVersions: the versions one index-cache file may list
	// (crates.io's most published crates have a few thousand).
	maxIndexVersions = 100_000

	// maxTarEntries, maxTarPath: cargo-shim's own limits on a tarball, far
	// above any published crate: past them a tarball is left to cargo
	// rather than held in memory.
	maxTarEntries = 200_000
	maxTarPath    = 4096

	// maxRegdirs: the registries a plan may name (one regdir each).
	maxRegdirs = 256
)

// maxUnpacked mirrors cargo's cap on the decompressed tar stream (headers
// included): max(512 MiB, 20x the compressed size).
func maxUnpacked(compressed int64) int64 {
	if n := compressed * 20; n > 512<<20 {
		return n
	}
	return 512 << 20
}

// planBounded: a plan record is no larger than the Cargo.lock it is keyed
// by allows. It plans at most the lock's [[package]] tables, instances of
// them only in the regdirs it names, and pins cold crates only under
// regdirs that really have an index: a record forged or gone stale cannot
// make a run take 20,000 locks for a one-crate Cargo.lock.
func (r Registry) planBounded(p *Plan, lockData []byte) bool {
	if len(p.crates) > bytes.Count(lockData, []byte("[[package]]")) || len(p.regdirs) > maxRegdirs ||
		len(p.instances) > len(p.crates)*len(p.regdirs) {
		return false
	}
	for _, d := range p.indexed {
		var st unix.Stat_t
		if r.lstatRaw(filepath.Join(r.Root, "index", d), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return false
		}
	}
	return true
}
