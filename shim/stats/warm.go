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
// directory: openat2, fstat, write, close, and no lock. The file's size is
// the count. Every foldAt runs the run that crosses it folds the count into
// the totals (under their lock) so that the file stays small:
//
//	WarmBase += size(warm.<uid>.old); remove .old; rename warm.<uid> -> .old
//
// .old was renamed foldAt runs ago, so no writer still holds it open, and
// the sum WarmBase + sizes is the same before and after.

// foldAt bounds a warm counter's size (a variable for the tests).
var foldAt int64 = 64 << 10

var warmName = regexp.MustCompile(`^warm\.([0-9]{1,10})(\.old)?$`)

var myWarm = sync.OnceValue(func() string { return "warm." + strconv.Itoa(unix.Geteuid()) })

var one = []byte{'.'}

// CountWarm counts one warm run in the registry held by reg. The counter
// is opened beneath reg with safefs.OpenOwn: a symlink, a FIFO or another
// uid's file planted at its name is refused, never written.
func CountWarm(reg *safefs.Dir, now time.Time) error {
	name := dirRel + "/" + myWarm()
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT
	var st unix.Stat_t
	fd, err := reg.OpenOwn(name, flags, 0o644, &st)
	if errors.Is(err, fs.ErrNotExist) {
		// The first warm run of a registry: make the directory.
		d, merr := reg.MkdirAll(dirRel, safefs.Shared)
		if merr != nil {
			return merr
		}
		d.Close()
		fd, err = reg.OpenOwn(name, flags, 0o644, &st)
	}
	if err != nil {
		return err
	}
	_, err = unix.Write(fd, one)
	unix.Close(fd)
	if err == nil && st.Size+1 >= foldAt {
		err = updateDir(reg.Name(), fold, now)
	}
	return err
}

// fold moves this uid's warm count into the totals (see above).
func fold(d *safefs.Dir, t *Totals) {
	cur := myWarm()
	old := cur + ".old"
	if n, ok := ownCount(d, old); ok {
		if d.Remove(old) != nil {
			return
		}
		t.WarmBase += n
	}
	_ = d.Rename(cur, d, old)
}

// warmCounted sums the warm counters in the stats directory d. A counter
// counts only if its owner is the uid its name claims, and for at most
// twice foldAt: another uid cannot make its file count as ours, and one
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
	m := warmName.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	var st unix.Stat_t
	if d.LstatRaw(name, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || strconv.Itoa(int(st.Uid)) != m[1] {
		return 0, false
	}
	return min(st.Size, 2*foldAt), true
}
