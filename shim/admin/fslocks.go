package admin

import "strings"

// LockReach is what a filesystem does with the registry's flocks, and with
// cargo's own, for runners on several hosts.
type LockReach struct {
	// Reach: a flock taken on one host is enforced against the others.
	Reach bool
	Note  string
	// CargoLocks: how cargo's own package-cache lock behaves there.
	CargoLocks string
	// ColdStarts: what runners starting on an empty registry get.
	ColdStarts string
}

const (
	cargoLocks   = "taken (cargo locks everywhere but NFS)"
	cargoSkipsFS = "skipped: cargo does not lock on NFS (it takes any lock there as granted)"
	dedupAll     = "deduplicated across hosts: cargo's lock, shared through the registry, reaches every host"
	dedupHost    = "deduplicated among the runners of this host only"
	dedupFetch   = "deduplicated across hosts by the shim: cargo takes no lock on NFS, so a run that finds planned crates missing runs `cargo fetch` under the shim's own exclusive lock (.cargo-shim/locks/fetch.lock) while the others wait"
)

// fuseUnlisted: the kernel hands a FUSE filesystem's flocks to its server
// and keeps no record of them in /proc/locks.
const fuseUnlisted = "; the crates locked right now are not listed (FUSE keeps flocks out of /proc/locks)"

// LocksOn judges a filesystem by its mount type (as /proc/self/mountinfo
// names it: ext4, nfs4, fuse.glusterfs, ceph) and mount options.
func LocksOn(fs, opts string) LockReach {
	switch {
	case fs == "fuse.glusterfs" || fs == "glusterfs":
		return LockReach{true, "GlusterFS: flock is arbitrated by the bricks' locks translator for every client (tested: two clients)" + fuseUnlisted, cargoLocks, dedupAll}
	case fs == "ceph":
		return LockReach{true, "CephFS: flock is arbitrated by the MDS for every client (tested through ceph-fuse, two clients; the kernel client is not tested)", cargoLocks, dedupAll}
	case fs == "fuse.ceph-fuse" || fs == "fuse.ceph":
		return LockReach{true, "CephFS through ceph-fuse: flock is arbitrated by the MDS for every client (tested: two clients)" + fuseUnlisted, cargoLocks, dedupAll}
	case fs == "nfs" || fs == "nfs4":
		return nfsLocks(fs, opts)
	case strings.HasPrefix(fs, "fuse"):
		return LockReach{false, fs + ": whether flock reaches other hosts depends on the FUSE server; do not rely on it" + fuseUnlisted, cargoLocks, dedupHost + " at most"}
	case fs == "cifs" || fs == "smb2" || fs == "smb3":
		return LockReach{false, fs + ": flock is not reliably forwarded to the server; do not rely on it across hosts", cargoLocks, dedupHost + " at most"}
	}
	return LockReach{false, fs + " is local: locks coordinate every container of this host (bind mounts share inodes), not other hosts", cargoLocks, dedupHost}
}

// nfsLocks: Linux emulates flock on NFS with whole-file byte-range locks
// sent to the server (NFSv4 itself, NFSv3 through lockd), unless local_lock
// keeps flocks local (flock, all; NFSv3's nolock means all).
func nfsLocks(fs, opts string) LockReach {
	vers, local := "", "none"
	if fs == "nfs4" {
		vers = "4"
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "vers", "nfsvers":
			vers = v
		case "local_lock":
			local = v
		case "nolock":
			local = "all"
		}
	}
	name := "NFS"
	if vers != "" {
		name += "v" + vers
	}
	if local == "flock" || local == "all" {
		return LockReach{false, name + " with local_lock=" + local + ": flock stays on this host; runners on other hosts are not coordinated (mount with local_lock=none)", cargoSkipsFS, dedupHost + " (the shim's fetch lock; cargo takes none on NFS)"}
	}
	how := "sent to the server"
	if strings.HasPrefix(vers, "3") || strings.HasPrefix(vers, "2") {
		how = "sent to the server through lockd (NLM; rpc.statd must run)"
	}
	return LockReach{true, name + " with local_lock=" + local + ": flock is emulated by whole-file byte-range locks " + how + " (tested: Linux 6.1 server and client, NFSv4.2 and NFSv3, two mounts of one export)", cargoSkipsFS, dedupFetch}
}
