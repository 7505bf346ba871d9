package groupshare

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MarkName is the mark file, in the registry's .cargo-shim directory: the
// gid in decimal and a newline.
const MarkName = "group"

const shimDirName = ".cargo-shim"

// MarkPath is where registry root's mark lives.
func MarkPath(root string) string { return filepath.Join(root, shimDirName, MarkName) }

// State is whether a registry is group-shared, and with which group.
type State struct {
	Shared bool
	Gid    int
	// Stale says why a mark is present but not honoured (the registry's own
	// group or setgid bit disagrees); empty otherwise.
	Stale string
}

// Read tells whether root is group-shared. A registry without a mark costs
// one failed open: this runs on every planned run.
func Read(root string) State {
	// Raw descriptors: an *os.File costs several more syscalls (the poller).
	// O_NONBLOCK: a FIFO planted as the mark must not hang every run; a
	// read of one without a writer returns EAGAIN or nothing at once.
	fd, err := unix.Open(MarkPath(root), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return State{}
	}
	var buf [32]byte
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return State{Stale: fmt.Sprintf("%s is not a regular file", MarkPath(root))}
	}
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil || n < 0 {
		n = 0
	}
	gid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || gid < 0 {
		return State{Stale: fmt.Sprintf("%s does not hold a gid", MarkPath(root))}
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return State{Gid: gid, Stale: err.Error()}
	}
	switch {
	case int(st.Gid) != gid:
		return State{Gid: gid, Stale: fmt.Sprintf("%s has group %d, the mark says %d", root, st.Gid, gid)}
	case st.Mode&unix.S_ISGID == 0:
		return State{Gid: gid, Stale: fmt.Sprintf("%s is not setgid", root)}
	}
	return State{Shared: true, Gid: gid}
}

// Umask is the umask for a run on a group-shared registry: the caller's,
// without its group bits, so that what cargo creates (directories, .crate
// files, markers, index cache files) is writable by the group. What the
// caller withholds from others stays withheld.
func Umask(old int) int { return old &^ 0o070 }

// ApplyUmask clears the group bits of this process's umask when root is
// group-shared, for the shim's own repairs and for the cargo it execs.
func ApplyUmask(root string) State {
	st := Read(root)
	if st.Shared {
		old := unix.Umask(0o022)
		unix.Umask(Umask(old))
	}
	return st
}

// GroupName names gid for messages ("1234" when it has no name here: inside
// a container the host's group may not be in /etc/group).
func GroupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// ResolveGroup reads GROUP as `init --group` takes it: a name, or a numeric
// gid (which need not have a name on this host).
func ResolveGroup(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("group %q: a gid is not negative", s)
		}
		return n, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("no group %q on this host (give the numeric gid to use one that only exists elsewhere): %w", s, err)
	}
	return strconv.Atoi(g.Gid)
}

// InGroup reports whether this process has gid as its effective or a
// supplementary group.
func InGroup(gid int) bool {
	if os.Getegid() == gid {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Hint says how to fix a permission failure on root, for the one warning
// of a run: "" when err is not about permissions.
func Hint(root string, err error) string {
	// Root is refused only by a read-only mount or an immutable file, which
	// no group fixes.
	if !errors.Is(err, fs.ErrPermission) || os.Geteuid() == 0 {
		return ""
	}
	st := Read(root)
	switch {
	case !st.Shared:
		return fmt.Sprintf("this uid (%d) cannot change what another uid made in the registry; to share it, run as root `cargo-shim init --group GROUP --registry %s` with a group this uid is in (docs/mixed-uids.md)", os.Geteuid(), root)
	case !InGroup(st.Gid):
		return fmt.Sprintf("the registry is shared by group %s, which this uid (%d) is not in (docker run --group-add %d)", GroupName(st.Gid), os.Geteuid(), st.Gid)
	}
	return fmt.Sprintf("part of the registry is not writable by its group %s yet (`cargo-shim status` lists it); run `cargo-shim init --group %d --registry %s` again", GroupName(st.Gid), st.Gid, root)
}
