package groupshare

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Audit lists the first limit paths under root that group gid cannot write
// where a member needs to: every directory (to add, rename, trash and
// delete entries, and to pass its group on, it must be group rwx and
// setgid with that group), and the files cargo opens for writing again:
// .crate files, index files and cargo's lock files. Extracted files need
// nothing: removing them takes write access to their directory only.
func Audit(root string, gid, limit int) ([]string, error) {
	out := []string{}
	err := walk(root, rewritten, func(n *node) error {
		why := ""
		switch {
		case n.Err != nil:
			why = "cannot be read: " + n.Err.Error()
		case n.isDir():
			why = dirProblem(&n.Stat, gid)
			if why == "" && n.Rel == trashRel && n.Stat.Mode&unix.S_ISVTX != 0 {
				why = "sticky: members cannot empty each other's trash (init again fixes it)"
			}
		case n.isReg() && rewritten(n.Rel):
			if !groupCan(&n.Stat, gid, 0o2) {
				why = fmt.Sprintf("not writable by the group (%04o, group %d)", n.Stat.Mode&0o7777, n.Stat.Gid)
			}
		}
		if why != "" {
			out = append(out, n.Path+": "+why)
			if len(out) >= limit {
				return errStop
			}
		}
		return nil
	})
	return out, err
}

func dirProblem(st *unix.Stat_t, gid int) string {
	switch {
	case !groupCan(st, gid, 0o3):
		return fmt.Sprintf("directory not writable by the group (%04o, group %d)", st.Mode&0o7777, st.Gid)
	case int(st.Gid) != gid || st.Mode&unix.S_ISGID == 0:
		return fmt.Sprintf("directory does not pass the group on (%04o, group %d: want setgid, group %d)", st.Mode&0o7777, st.Gid, gid)
	}
	return ""
}

// groupCan: the group has the access bits want (of rwx = 4,2,1) through
// the group class, or everyone has them.
func groupCan(st *unix.Stat_t, gid int, want uint32) bool {
	return int(st.Gid) == gid && (st.Mode>>3)&want == want || st.Mode&want == want
}

// rewritten: files cargo opens for writing after they exist.
func rewritten(rel string) bool {
	return strings.HasPrefix(rel, "cache/") && strings.HasSuffix(rel, ".crate") ||
		strings.HasPrefix(rel, "index/") ||
		strings.HasPrefix(rel, shimDirName+"/cargo/") || strings.HasPrefix(rel, shimDirName+"/locks/")
}
