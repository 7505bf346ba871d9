package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Probe is what a filesystem measurably does with flock, as `cargo-shim
// status` reports it: each field is "ok" or what went wrong.
type Probe struct {
	Filesystem string `json:"filesystem"`
	// SharedReadOnly ... ExclusiveReadWrite: a lock of that mode through a
	// descriptor opened that way (NFSv4 refuses an exclusive lock on a
	// read-only descriptor with EBADF).
	SharedReadOnly     string `json:"shared_read_only"`
	ExclusiveReadOnly  string `json:"exclusive_read_only"`
	SharedReadWrite    string `json:"shared_read_write"`
	ExclusiveReadWrite string `json:"exclusive_read_write"`
	// Excludes: an exclusive lock refuses a second one taken through another
	// descriptor (on this host; other hosts cannot be seen from here).
	Excludes string `json:"excludes"`
	// SurvivesClose: the exclusive lock still excludes after this process
	// opened and closed another descriptor of the file (POSIX record-lock
	// semantics would drop it).
	SurvivesClose string `json:"survives_close"`
	Err           string `json:"error,omitempty"`
}

// OK reports whether every lock the shim takes works there.
func (p Probe) OK() bool {
	return p.Err == "" && p.SharedReadWrite == "ok" && p.ExclusiveReadWrite == "ok" && p.Excludes == "ok" && p.SurvivesClose == "ok"
}

// Summary is the probe in one line.
func (p Probe) Summary() string {
	if p.Err != "" {
		return "not measured: " + p.Err
	}
	return fmt.Sprintf("shared/read-only %s, exclusive/read-only %s, shared/read-write %s, exclusive/read-write %s, exclusion between descriptors %s, kept after another close %s",
		p.SharedReadOnly, p.ExclusiveReadOnly, p.SharedReadWrite, p.ExclusiveReadWrite, p.Excludes, p.SurvivesClose)
}

// ProbeLocks measures flock on a scratch file it creates in dir (and
// removes).
func ProbeLocks(dir string) Probe {
	p := Probe{Filesystem: FilesystemName(dir)}
	if err := mkdirShared(dir); err != nil {
		p.Err = err.Error()
		return p
	}
	// Through the directory's descriptor, opened without following a link:
	// the scratch file is made and removed there and nowhere else.
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		p.Err = (&os.PathError{Op: "open", Path: dir, Err: err}).Error()
		return p
	}
	defer unix.Close(dfd)
	base := fmt.Sprintf(".lock-probe.%d.%d", os.Getpid(), time.Now().UnixNano())
	rw, err := unix.Openat(dfd, base, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|fdFlags, 0o600)
	if err != nil {
		p.Err = (&os.PathError{Op: "create", Path: filepath.Join(dir, base), Err: err}).Error()
		return p
	}
	defer unix.Unlinkat(dfd, base, 0)
	defer unix.Close(rw)
	// A second open of the same file, by its descriptor's /proc link: the
	// read-only view of the very file, wherever the path points by now.
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", rw), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	defer unix.Close(ro)
	p.SharedReadOnly = tryLock(ro, unix.LOCK_SH)
	p.ExclusiveReadOnly = tryLock(ro, unix.LOCK_EX)
	p.SharedReadWrite = tryLock(rw, unix.LOCK_SH)
	p.ExclusiveReadWrite = tryLock(rw, unix.LOCK_EX)
	if p.ExclusiveReadWrite == "ok" {
		p.Excludes, p.SurvivesClose = probeExclusion(rw, ro)
	}
	return p
}

// tryLock takes and drops a lock of how on fd, without waiting.
func tryLock(fd, how int) string {
	if err := unix.Flock(fd, how|unix.LOCK_NB); err != nil {
		return describeErrno(err)
	}
	_ = unix.Flock(fd, unix.LOCK_UN)
	return "ok"
}

// probeExclusion holds rw exclusively and tries ro: refused is "ok". Then
// it opens and closes a third descriptor and tries again.
func probeExclusion(rw, ro int) (excludes, survives string) {
	if err := unix.Flock(rw, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return describeErrno(err), "not measured"
	}
	defer unix.Flock(rw, unix.LOCK_UN)
	other := func() string {
		err := unix.Flock(ro, unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			_ = unix.Flock(ro, unix.LOCK_UN)
			return "no: a second descriptor got a shared lock"
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			return "ok"
		}
		return describeErrno(err)
	}
	excludes = other()
	if fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", ro), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
		unix.Close(fd)
	}
	survives = other()
	return excludes, survives
}

func describeErrno(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		return fmt.Sprintf("refused: %s (%s)", unix.ErrnoName(en), en.Error())
	}
	return "refused: " + err.Error()
}
