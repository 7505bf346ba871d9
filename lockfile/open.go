package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Opening a lock file, and what a filesystem that refuses a lock means.
//
// On NFSv4 (and on NFSv3 servers that check the open mode) Linux emulates
// flock with a whole-file byte-range lock held on the server, and an
// exclusive byte-range lock needs a descriptor open for writing: LOCK_EX on
// a read-only descriptor fails with EBADF there. So lock files are opened
// read-write. Where this uid cannot write the file (another uid's file with
// a narrow mode, a read-only mount) it is opened read-only: shared locks
// work on every filesystem, exclusive ones where the filesystem allows them,
// and otherwise fail with refusedError naming the file and the fix.

// openAttempts are tried in order until one is not refused for want of
// write access: read-write creating the file; read-write without O_CREAT
// (an existing file this uid may write, where creating is refused, as
// fs.protected_regular does in sticky directories); read-only.
var openAttempts = [...]int{
	unix.O_RDWR | unix.O_CREAT,
	unix.O_RDWR,
	unix.O_RDONLY,
}

// writeRefused: the open failed for want of write access, not because the
// path is bad.
func writeRefused(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EPERM)
}

// openLockFile opens the lock file at path (resolved beneath its declared
// registry if it lies in one), read-write if this uid may, else read-only;
// st receives its status.
func openLockFile(path string, dirs *lockDirs, st *unix.Stat_t) (fd int, readOnly bool, err error) {
	last := len(openAttempts) - 1
	for n := 0; ; n++ {
		flags := openAttempts[n]
		fd, err = openLockFlags(path, flags, dirs, st)
		if err == nil || !writeRefused(err) || n == last {
			return fd, flags&unix.O_ACCMODE == unix.O_RDONLY, err
		}
		if errors.Is(err, unix.EROFS) {
			n = last - 1 // nothing can be written there: straight on to read-only
		}
	}
}

// refusedError explains a lock the filesystem refused (rather than one
// another process holds): EBADF for an exclusive lock on a read-only
// descriptor (NFSv4), ENOLCK (no lock manager: NFSv3 without lockd/statd,
// or mounted nolock on another host), ENOTSUP/EOPNOTSUPP (no locks at all).
func refusedError(path string, mode Mode, readOnly bool, err error) error {
	fsName := FilesystemName(filepath.Dir(path))
	switch {
	case errors.Is(err, unix.EBADF) && readOnly:
		return fmt.Errorf("the %s filesystem refuses an %s lock on a file opened read-only, and uid %d cannot write the lock file (make it mode 0666): %w", fsName, mode, os.Geteuid(), err)
	case errors.Is(err, unix.EBADF):
		return fmt.Errorf("the %s filesystem refused an %s lock on a descriptor open for writing: %w", fsName, mode, err)
	case errors.Is(err, unix.ENOLCK):
		return fmt.Errorf("the %s filesystem has no lock manager to take the lock (on NFSv3: is rpc.statd running on this host and lockd on the server? a mount with nolock or local_lock=all keeps locks on one host): %w", fsName, err)
	case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("the %s filesystem does not support file locks: %w", fsName, err)
	}
	return err
}

// FilesystemName names the filesystem holding dir from its statfs magic
// ("nfs", "tmpfs", or the magic in hex).
func FilesystemName(dir string) string {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return "unknown"
	}
	if n, ok := fsNames[int64(sfs.Type)]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", sfs.Type)
}

// IsNFS reports whether dir is on NFS (any version): cargo takes no lock of
// its own there.
func IsNFS(dir string) bool {
	var sfs unix.Statfs_t
	return unix.Statfs(dir, &sfs) == nil && sfs.Type == unix.NFS_SUPER_MAGIC
}

var fsNames = map[int64]string{
	0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
	0x794C7630: "overlay", unix.NFS_SUPER_MAGIC: "nfs", 0x00C36400: "ceph", 0x65735546: "fuse",
	0x2FC12FC1: "zfs", 0xFE534D42: "smb2", 0xFF534D42: "cifs", 0x5346544E: "ntfs",
	0x47504653: "gpfs", 0x0BD00BD0: "lustre",
}
