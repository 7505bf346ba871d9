package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/shim/store"
)

// LockProbe is what flock does on the registry's filesystem, measured on a
// scratch file in the registry rather than read from documentation: each
// field says whether that lock was granted (or, for the exclusions, refused
// as it must be).
type LockProbe struct {
	// SharedOnReadOnly, ExclusiveOnReadOnly: flock(LOCK_SH / LOCK_EX) on a
	// descriptor opened read-only, as the shim's lock files are (NFSv4
	// refuses LOCK_EX there with EBADF).
	SharedOnReadOnly    bool `json:"shared_on_read_only"`
	ExclusiveOnReadOnly bool `json:"exclusive_on_read_only"`
	// ExclusiveOnReadWrite: LOCK_EX on a read-write descriptor, as cargo's.
	ExclusiveOnReadWrite bool `json:"exclusive_on_read_write"`
	// ExcludesHere: with LOCK_EX held, a second open of the file through
	// the same mount is refused LOCK_SH.
	ExcludesHere bool `json:"excludes_here"`
	// OtherMount is the same directory through another mount of the same
	// filesystem (another client: another "host"), when one is mounted here;
	// ExcludesOtherMount says whether LOCK_EX held here refused LOCK_SH
	// there, and ReleasedOtherMount whether it was granted after unlock.
	OtherMount         string `json:"other_mount,omitempty"`
	ExcludesOtherMount bool   `json:"excludes_other_mount,omitempty"`
	ReleasedOtherMount bool   `json:"released_other_mount,omitempty"`
	OtherMountError    string `json:"other_mount_error,omitempty"`
	Error              string `json:"error,omitempty"`
}

// ProbeFlock measures flock in dir (the registry's .cargo-shim directory):
// shared and exclusive locks on read-only and read-write descriptors, and
// exclusion through this mount and, where the same filesystem is mounted
// again here (two clients of one network filesystem), through that mount.
// It creates and removes one scratch file; it never touches a lock anyone
// else uses.
func ProbeFlock(dir string) LockProbe {
	var p LockProbe
	var id [6]byte
	rand.Read(id[:])
	name := ".lock-probe-" + hex.EncodeToString(id[:])
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer os.Remove(path)
	defer f.Close()
	ro, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer ro.Close()
	p.SharedOnReadOnly = flockNB(ro, unix.LOCK_SH) == nil && flockNB(ro, unix.LOCK_UN) == nil
	p.ExclusiveOnReadOnly = flockNB(ro, unix.LOCK_EX) == nil && flockNB(ro, unix.LOCK_UN) == nil
	if p.ExclusiveOnReadWrite = flockNB(f, unix.LOCK_EX) == nil; !p.ExclusiveOnReadWrite {
		return p
	}
	p.ExcludesHere = errors.Is(flockNB(ro, unix.LOCK_SH), unix.EWOULDBLOCK)
	other := otherMountOf(dir)
	if other == "" {
		return p
	}
	o, err := os.OpenFile(filepath.Join(other, name), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		p.OtherMountError = err.Error() // not the same directory after all, or not answering
		return p
	}
	defer o.Close()
	p.OtherMount = other
	p.ExcludesOtherMount = errors.Is(flockNB(o, unix.LOCK_SH), unix.EWOULDBLOCK)
	flockNB(f, unix.LOCK_UN)
	p.ReleasedOtherMount = flockNB(o, unix.LOCK_SH) == nil
	return p
}

func flockNB(f *os.File, how int) error {
	if how != unix.LOCK_UN {
		how |= unix.LOCK_NB
	}
	return unix.Flock(int(f.Fd()), how)
}

// Reach is the probe's verdict on whether locks coordinate hosts, and how
// it was reached; ok is false when it proves nothing either way (no second
// mount to try).
func (p LockProbe) Reach() (reach bool, note string, ok bool) {
	if p.OtherMount == "" || p.Error != "" {
		return false, "", false
	}
	if p.ExcludesOtherMount && p.ReleasedOtherMount {
		return true, "measured: an exclusive flock here refused a shared one through " + p.OtherMount + " (another client), and released it on unlock", true
	}
	return false, fmt.Sprintf("measured: an exclusive flock here did not exclude %s (another client: refused %v, granted after unlock %v)", p.OtherMount, p.ExcludesOtherMount, p.ReleasedOtherMount), true
}

func (p LockProbe) String() string {
	if p.Error != "" {
		return "not measured: " + p.Error
	}
	s := fmt.Sprintf("LOCK_SH on read-only %s, LOCK_EX on read-only %s, LOCK_EX on read-write %s, excludes through this mount %s",
		yesNo(p.SharedOnReadOnly), yesNo(p.ExclusiveOnReadOnly), yesNo(p.ExclusiveOnReadWrite), yesNo(p.ExcludesHere))
	if p.OtherMount != "" {
		s += fmt.Sprintf(", excludes through %s %s", p.OtherMount, yesNo(p.ExcludesOtherMount && p.ReleasedOtherMount))
	} else if p.OtherMountError != "" {
		s += " (a second mount of this filesystem is here, but the scratch file did not open through it: " + p.OtherMountError + ")"
	} else {
		s += " (no second mount of this filesystem here to test other clients)"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// otherMountOf finds dir through another mount of the same filesystem: same
// type and source, another device (another client, not a bind mount of
// this one), whose root contains dir. "" when there is none.
func otherMountOf(dir string) string {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	mounts := store.Mounts()
	here, ok := store.MountOf(real, mounts)
	if !ok {
		return ""
	}
	rel, _ := filepath.Rel(here.Point, real)
	inFS := filepath.Join(here.Root, rel)
	for _, m := range mounts {
		if m.FSType != here.FSType || m.Source != here.Source || m.Dev == here.Dev || !store.Under(inFS, m.Root) {
			continue
		}
		r, _ := filepath.Rel(m.Root, inFS)
		return filepath.Join(m.Point, r)
	}
	return ""
}

// cephSessionTimeout says what bounds the wait for the locks of a CephFS
// client that died: the MDS keeps them until it evicts the client's
// session, session_timeout seconds (plus a few) after its last contact.
// Read with the ceph CLI when it and a cluster configuration are at hand.
func cephSessionTimeout() string {
	const how = "the locks of a host that died stay until the MDS evicts its session, session_timeout seconds after its last contact (60 s by default; `ceph fs get <fs>` shows it, `ceph fs set <fs> session_timeout N` sets it, 30 s at least; `ceph tell mds.<id> client evict id=<client>` frees them at once)"
	if _, err := exec.LookPath("ceph"); err != nil {
		return how + "; not read here: no ceph CLI"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ceph", "--connect-timeout", "4", "fs", "dump", "--format", "json").Output()
	if err != nil {
		return how + "; not read here: `ceph fs dump` failed (set CEPH_CONF, or give this host /etc/ceph/ceph.conf and a keyring)"
	}
	var dump struct {
		Filesystems []struct {
			MDSMap struct {
				Name           string `json:"fs_name"`
				SessionTimeout int    `json:"session_timeout"`
			} `json:"mdsmap"`
		} `json:"filesystems"`
	}
	if json.Unmarshal(out, &dump) != nil || len(dump.Filesystems) == 0 {
		return how + "; not read here: `ceph fs dump` lists no filesystem"
	}
	var s []string
	for _, f := range dump.Filesystems {
		s = append(s, fmt.Sprintf("%s: session_timeout %d s", f.MDSMap.Name, f.MDSMap.SessionTimeout))
	}
	return how + "; read from the cluster: " + strings.Join(s, ", ")
}

// evictionNote is what bounds a wait for a dead host's locks on fs, for
// status; "" where no such bound is known.
func evictionNote(fs string) string {
	if store.CephFS(fs) {
		return cephSessionTimeout()
	}
	return ""
}
