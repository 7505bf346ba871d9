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

// The lock contract, for single locks and sets alike (one primitive,
// takeFD: gofrs/flock cannot hand back its descriptor, which widen and
// Chtimes need, and on EBADF it closes and reopens the file by path): the
// file is opened by openLockFile, and once locked it must still be the file
// at its path.

// fdFlags go with every open of a lock file (the access mode comes from
// openAttempts, see open.go: read-write where this uid may): O_NOFOLLOW so a
// planted symlink never redirects a lock out of the registry; O_CLOEXEC so
// descriptors never leak into cargo; O_NONBLOCK so a FIFO planted at the
// path cannot block the open (what is not a regular file is then refused).
const fdFlags = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// filePerm lets every runner uid open (and so lock) a lock file read-write;
// umask is corrected after creation: an exclusive lock on NFSv4 and a later
// utimes by another uid both need write access.
const filePerm = 0o666

// heldFile is the identity and owner of a locked file, from fstat.
type heldFile struct {
	dev, ino  uint64
	uid, mode uint32
}

// afterLock, when set by a test, runs between locking and the identity
// check: where a replaced lock file would slip through.
var afterLock func(path string)

// lockAt takes the lock on the file at path with takeFD, then checks that the
// path still names that file: a lock file replaced or removed between open
// and flock would let two holders each believe they hold "the" lock.
func lockAt(path string, mode Mode, dirs *lockDirs) (*Lock, error) {
	for attempt := 0; ; attempt++ {
		l, held, err := takeFD(path, mode, dirs)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			dirs.forget(path)
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
			l.Release()
			return nil, &fs.PathError{Op: "lock", Path: path, Err: safefs.ErrNotRegular}
		}
		if afterLock != nil {
			afterLock(path)
		}
		if !stillAt(path, held, dirs) {
			l.Release()
			if attempt < 10 {
				continue
			}
			return nil, &fs.PathError{Op: "lock", Path: path, Err: errors.New("lock file keeps being replaced")}
		}
		if held.mode&filePerm != filePerm && int(held.uid) == os.Geteuid() {
			_ = unix.Fchmod(l.fd, filePerm)
		}
		return l, nil
	}
}

// The file is widened through the held descriptor, never by opening its
// path again: on NFS a flock is a POSIX lock on the server, and where POSIX
// semantics apply, closing any descriptor of a file drops every lock the
// process holds on it. A process that holds a lock file never opens and
// closes it a second time (stillAt only looks the path up).
