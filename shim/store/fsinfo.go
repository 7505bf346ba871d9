package store

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// FilesystemOf names the filesystem holding p and its mount's options: the
// mount's own type where mountinfo gives one (fuse.glusterfs rather than
// fuse, nfs4 rather than nfs), else what statfs says.
func FilesystemOf(p string) (string, string) {
	name := lockfile.FilesystemName(p)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		real = p
	}
	m, ok := MountOf(real, Mounts())
	if !ok {
		return name, ""
	}
	if m.FSType != "" {
		name = m.FSType
	}
	return name, m.Options
}

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Dev, Root, Point, FSType, Source string
	// Options: the mount's and its superblock's, each once.
	Options string
}

// Mounts reads /proc/self/mountinfo (nil when it cannot be read).
func Mounts() []Mount {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || sep+2 >= len(fields) {
			continue
		}
		m := Mount{Dev: fields[2], Root: unescapeMount(fields[3]), Point: unescapeMount(fields[4]), FSType: fields[sep+1], Source: fields[sep+2], Options: fields[5]}
		if sep+3 < len(fields) {
			m.Options = mergeOptions(fields[5], fields[sep+3])
		}
		out = append(out, m)
	}
	return out
}

// MountOf is the mount whose point is the longest one containing the
// resolved path real.
func MountOf(real string, mounts []Mount) (Mount, bool) {
	best, ok := Mount{}, false
	for _, m := range mounts {
		if Under(real, m.Point) && (!ok || len(m.Point) > len(best.Point)) {
			best, ok = m, true
		}
	}
	return best, ok
}

// Under reports whether p is dir or below it.
func Under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline, backslash.
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
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
