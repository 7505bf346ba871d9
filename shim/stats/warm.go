package stats

import (
	"errors"
	"io/fs"
	"regexp"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// A warm run (nothing repaired, nothing waited for, plan record trusted)
// counts itself by appending one byte to warm.<uid> in the stats
// directory: openat2, flock shared, fstat, write, close. The file's size
// is the count. The run that writes byte number k*foldAt folds the count
// into the totals (under their lock) so that the file stays small:
//
//	exclusive flock on warm.<uid>.old (no writer still in it);
//	WarmBase += its size; remove it; rename warm.<uid> -> warm.<uid>.old
//
// A writer that finds, once its shared lock is held, that its file has no
// name left (folded away) opens the name again: no count is lost. The
// counters are 0600: only their uid (and root) can open them, so no other
// uid can hold their locks; sizes are read with lstat, which needs no
// permission on the file.

// foldAt bounds a warm counter's size (a variable for the tests).
var foldAt int64 = 64 << 10

// warmName is compiled on first use: every drop-in run (and its holder)
// links this package, and only readers of the counters match names.
var warmName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^warm\.([0-9]{1,10})(\.old)?$`) })

var myWarm = sync.OnceValue(func() string { return "warm." + strconv.Itoa(safefs.Euid()) })

var one = []byte{'.'}

// CountWarm counts one warm run in the registry held by reg. The counter
// is opened beneath reg with safefs.OpenOwn: a symlink, a FIFO or another
// uid's file planted at its name is refused, never written.
func CountWarm(reg *safefs.Dir, now time.Time) error {
	name := dirRel + "/" + myWarm()
	var st unix.Stat_t
	fd, err := openWarm(reg, name, &st)
	if errors.Is(err, fs.ErrNotExist) {
		// The first warm run of a registry: make the directory.
		d, merr := reg.MkdirAll(dirRel, safefs.Shared)
		if merr != nil {
			return merr
		}
		d.Close()
		fd, err = openWarm(reg, name, &st)
	}
	if err != nil {
		return err
	}
	_, err = unix.Write(fd, one)
	unix.Close(fd)
	if err == nil && (st.Size+1)%foldAt == 0 {
		err = updateDir(reg.Name(), fold, now)
	}
	return err
}

// openWarm opens the counter under a shared lock, again when a fold
// removed the file it opened.
func openWarm(reg *safefs.Dir, name string, st *unix.Stat_t) (int, error) {
	for try := 0; ; try++ {
		fd, err := reg.OpenOwn(name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, 0o600, unix.LOCK_SH, st)
		if !errors.Is(err, safefs.ErrGone) && !errors.Is(err, unix.EWOULDBLOCK) || try == 100 {
			return fd, err
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			time.Sleep(time.Millisecond) // a fold holds it, for microseconds
		}
	}
}

// fold moves this uid's warm count into the totals (see above).
func fold(d *safefs.Dir, t *Totals) {
	cur := myWarm()
	old := cur + ".old"
	for try := 0; ; try++ {
		var st unix.Stat_t
		fd, err := d.OpenOwn(old, unix.O_RDONLY, 0, unix.LOCK_EX, &st)
		if errors.Is(err, unix.EWOULDBLOCK) && foreign(d, old) {
			break // another uid's, flocked by it: no count of ours waits there
		}
		if errors.Is(err, unix.EWOULDBLOCK) && try < 1000 {
			time.Sleep(time.Millisecond) // a writer is between open and write
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if errors.Is(err, safefs.ErrNotOwn) && int(st.Uid) != safefs.Euid() {
			// Another uid planted it: it holds none of our count, and
			// root may rename over it in the sticky directory (the rename
			// below fails for other uids, as before).
			break
		}
		if err != nil {
			return // busy for a second, or not ours: fold another time
		}
		n, ok := ownCount(d, old)
		removed := ok && d.Remove(old) == nil
		unix.Close(fd)
		if !removed {
			return // renaming over it would lose its count
		}
		t.WarmBase += n
		break
	}
	_ = d.Rename(cur, d, old)
}

// foreign: rel in d is there and another uid's.
func foreign(d *safefs.Dir, rel string) bool {
	var st unix.Stat_t
	return d.LstatRaw(rel, &st) == nil && int(st.Uid) != safefs.Euid()
}

// warmCounted sums the warm counters in the stats directory d. A counter
// counts only if its owner is the uid its name claims, and for at most
// 16*foldAt: another uid cannot make its file count as ours, and one
// uid's inflated counter is bounded.
func warmCounted(d *safefs.Dir) int64 {
	ents, err := d.ReadDir(".")
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if c, ok := ownCount(d, e.Name()); ok {
			n += c
		}
	}
	return n
}

func ownCount(d *safefs.Dir, name string) (int64, bool) {
	m := warmName().FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	var st unix.Stat_t
	if d.LstatRaw(name, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || strconv.Itoa(int(st.Uid)) != m[1] {
		return 0, false
	}
	return min(st.Size, 16*foldAt), true
}
