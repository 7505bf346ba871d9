package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cargo-shim/cargo-shim/safefs"
	"golang.org/x/sys/unix"
)

// The lock contract, whichever primitive takes a lock (gofrs/flock for
// single locks, a raw descriptor for sets): the file is opened with
// openFlags, and once locked it must still be the file at its path.

// openFlags: read-only is enough for flock and lets any uid lock a file
// another uid created; O_NOFOLLOW so a planted symlink never redirects a lock
// out of the registry; O_CLOEXEC so descriptors never leak into cargo;
// O_NONBLOCK so a FIFO planted at a lock path is opened at once (and then
// refused as not a regular file) instead of blocking in open(2), where no
// lock timeout applies.
const openFlags = unix.O_RDONLY | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// filePerm lets every runner uid open (and so lock) a lock file; umask is
// corrected after creation because flock needs only read access but a later
// utimes by another uid needs write access.
const filePerm = 0o666

// heldFile is the identity and owner of a locked file, from fstat.
type heldFile struct {
	dev, ino  uint64
	uid, mode uint32
}

// take is a primitive: open path with openFlags and flock it without
// waiting; ErrBusy when another process holds a conflicting lock.
type take func(path string, mode Mode) (*Lock, heldFile, error)

// afterLock, when set by a test, runs between locking and the identity
// check: where a replaced lock file would slip through.
var afterLock func(path string)

// lockAt takes the lock on the file at path with take, then checks that the
// path still names that file: a lock file replaced or removed between open
// and flock would let two holders each believe they hold "the" lock.
func lockAt(path string, mode Mode, take take) (*Lock, error) {
	if _, _, below, _ := anchor(path); below {
		take = takeFD // gofrs opens by path: it cannot resolve beneath a descriptor
	}
	for attempt := 0; ; attempt++ {
		l, held, err := take(path, mode)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			if mkErr := mkdirShared(filepath.Dir(path)); mkErr != nil {
				return nil, &fs.PathError{Op: "lock", Path: path, Err: mkErr}
			}
			continue
		}
		if errors.Is(err, syscall.ELOOP) {
			err = fmt.Errorf("lock file is a symlink, refusing to follow it: %w", err)
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		if held.mode&unix.S_IFMT != unix.S_IFREG {
			// gofrs opens by path: the one primitive's check, after the fact.
			l.Release()
			return nil, &fs.PathError{Op: "lock", Path: path, Err: safefs.ErrNotRegular}
		}
		if afterLock != nil {
			afterLock(path)
		}
		if !stillAt(path, held) {
			l.Release()
			if attempt < 10 {
				continue
			}
			return nil, &fs.PathError{Op: "lock", Path: path, Err: errors.New("lock file keeps being replaced")}
		}
		if held.mode&filePerm != filePerm && int(held.uid) == os.Geteuid() {
			widen(path, held)
		}
		return l, nil
	}
}

// widen makes a lock file we just created 0666 (our umask narrowed it).
// Opened with O_NOFOLLOW and compared to the locked file, so a swapped path
// is never chmodded.
func widen(path string, held heldFile) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var cur unix.Stat_t
	if unix.Fstat(fd, &cur) == nil && cur.Ino == held.ino && cur.Dev == held.dev {
		_ = unix.Fchmod(fd, filePerm)
	}
}
