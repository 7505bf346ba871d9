// Package lockfile provides the per-crate advisory locks of cargo-shim.
//
// Locks are flock(2) locks on small files that live beside, never inside,
// what they guard. Shared = "a build uses this crate", exclusive = "repairing
// or deleting it". flock has no deadlock detection and no atomic upgrade, so
// callers follow two rules: sets are taken in sorted order, and nobody blocks
// on an exclusive lock while holding any other per-crate lock.
//
// Single locks (Try, Acquire) and sets (AcquireSet, the drop-in's pin of
// hundreds of crates) share one primitive on a raw descriptor: an *os.File
// costs ten syscalls per lock, a raw descriptor four (pin.go). One contract
// applies (contract.go): a lock file is opened read-write where this uid may
// (else read-only) with O_NOFOLLOW, O_CLOEXEC and O_NONBLOCK, made
// world-lockable whatever the umask, and checked after locking to still be
// the file at its path.
// Parallel is the one worker pool, for AcquireSet and the registry checks.
// The Holder keeps a set across the exec of cargo.
//
// Caveats: flock reaches other hosts only on NFSv4/CephFS mounts configured to
// forward it (NFS: local_lock=none). On a local filesystem shared through bind
// mounts it coordinates every container of the host, since they share inodes.
//
// Below a registry declared with Beneath (the store declares its registry
// before any lock, and holders declare the same), lock files and their
// directories are resolved beneath the registry's descriptor following no
// symlink (safefs), and missing directories are made race-free and sticky.
// One acquisition holds each lock directory open and opens and re-checks its
// lock files by name there (lockDirs, beneath.go).
package lockfile
