package admin

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
)

// GroupStatus is the group-sharing part of `cargo-shim status`.
type GroupStatus struct {
	Shared bool   `json:"group_shared"`
	Group  string `json:"group"`
	Gid    int    `json:"gid"`
	Note   string `json:"group_note"`
	// Unwritable lists the first paths the group cannot write where a
	// member needs to (empty when all is well).
	Unwritable []string `json:"group_unwritable"`
}

// maxUnwritable bounds the list: the first few paths say what to fix, and
// the walk stops there.
const maxUnwritable = 10

// groupStatus audits the registry against its sharing group, or, when it is
// not group-shared, against the registry directory's own group.
func groupStatus(root string) GroupStatus {
	st := groupshare.Read(root)
	gs := GroupStatus{Shared: st.Shared, Gid: st.Gid, Unwritable: []string{}}
	if !st.Shared {
		if fi, err := os.Stat(root); err == nil {
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
				gs.Gid = int(sys.Gid)
			}
		}
	}
	gs.Group = groupshare.GroupName(gs.Gid)
	switch {
	case st.Shared:
		gs.Note = fmt.Sprintf("group-shared by %s (gid %d): runs through the shim create what the group can write", gs.Group, gs.Gid)
	case st.Stale != "":
		gs.Note = "not group-shared: the mark is there but " + st.Stale + "; run `cargo-shim init --group GROUP` again"
	default:
		gs.Note = fmt.Sprintf("not group-shared (`cargo-shim init --group GROUP` makes it so); audited against the registry's group %s", gs.Group)
	}
	if list, err := groupshare.Audit(root, gs.Gid, maxUnwritable); err == nil {
		gs.Unwritable = list
	}
	return gs
}

// printGroupStatus lists what the group cannot write on a group-shared
// registry; on one that is not, every path is "not writable by the group"
// by design, so the list is noise unless asked for (-v).
func printGroupStatus(w io.Writer, gs GroupStatus, verbose bool) {
	shim.Fprintf(w, "group-shared:       %v: %s\n", gs.Shared, gs.Note)
	if !gs.Shared && !verbose {
		return
	}
	if len(gs.Unwritable) == 0 {
		shim.Fprintf(w, "group can write:    everything a member needs to\n")
		return
	}
	more := ""
	if len(gs.Unwritable) == maxUnwritable {
		more = ", maybe more"
	}
	shim.Fprintf(w, "group cannot write: (first %d%s)\n", len(gs.Unwritable), more)
	for _, p := range gs.Unwritable {
		shim.Fprintf(w, "  %s\n", p)
	}
}
