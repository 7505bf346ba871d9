// Package lockfile provides the per-crate advisory locks of cargo-shim.
//
// Locks are flock(2) locks (through github.com/gofrs/flock) on small files that
// live beside, never inside, what they guard. Shared = "a build uses this crate",
// exclusive = "repairing or deleting it". flock has no deadlock detection and no
// atomic upgrade, so callers follow two rules: sets are locked in sorted order,
// and nobody blocks on an exclusive lock while holding any other lock.
//
// Caveats: flock reaches other hosts only on NFSv4/CephFS mounts configured to
// forward it (NFS: local_lock=none). On a local filesystem shared through bind
// mounts it coordinates every container of the host, since they share inodes.
package lockfile
