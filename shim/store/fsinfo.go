package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

var fsNames = map[int64]string{
	0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
	0x794C7630: "overlay", 0x6969: "nfs", 0x00C36400: "ceph", 0x65735546: "fuse",
	0x2FC12FC1: "zfs", 0xFE534D42: "smb2", 0xFF534D42: "cifs", 0x5346544E: "ntfs",
	0x47504653: "gpfs", 0x0BD00BD0: "lustre",
}

// FilesystemOf names the filesystem holding p and its mount's options (from
// /proc/self/mountinfo, longest mount point containing p).
func FilesystemOf(p string) (string, string) {
	var sfs unix.Statfs_t
	name := "unknown"
	if err := unix.Statfs(p, &sfs); err == nil {
		if n, ok := fsNames[int64(sfs.Type)]; ok {
			name = n
		} else {
			name = fmt.Sprintf("0x%x", sfs.Type)
		}
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		real = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return name, ""
	}
	defer f.Close()
	best, opts := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for k, x := range fields {
			if x == "-" {
				sep = k
				break
			}
		}
		if len(fields) < 6 || sep < 0 || sep+3 >= len(fields) {
			continue
		}
		mp := fields[4]
		if (real == mp || strings.HasPrefix(real, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
			opts = mergeOptions(fields[5], fields[sep+3])
			// The mount's own type is the more exact: fuse.glusterfs
			// rather than fuse, nfs4 rather than nfs.
			if fields[sep+1] != "" {
				name = fields[sep+1]
			}
		}
	}
	return name, opts
}

// CephFS is what FilesystemOf names CephFS mounts: the kernel client, or
// ceph-fuse (statfs says only FUSE; mountinfo says fuse.ceph-fuse).
func CephFS(fs string) bool {
	return fs == "ceph" || fs == "fuse.ceph-fuse" || fs == "fuse.ceph"
}

// mergeOptions joins a mount's per-mount options and its superblock
// options, each option once ("rw,relatime" and "rw,discard" give
// "rw,relatime,discard").
func mergeOptions(lists ...string) string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, o := range strings.Split(l, ",") {
			if o != "" && !seen[o] {
				seen[o] = true
				out = append(out, o)
			}
		}
	}
	return strings.Join(out, ",")

}
