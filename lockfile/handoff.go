package lockfile

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Handing locks off. The shim that waits for its holder's "ok" waits for a
// second Go runtime to start (one to three milliseconds here) before it can
// exec cargo, however fast its own check was. So where flock is the
// kernel's own (LocalLocks), the shim takes the free locks itself and
// passes each descriptor to the holder over a socket (SCM_RIGHTS) the
// moment it has it. A flock belongs to the open file, not to a process:
// passed on, it is the holder's descriptor that keeps it, and until the
// holder has read it, the socket does (the holder's end of it was made
// before anything was sent, and is the holder's alone once it has
// started). The shim can exec cargo as soon as the last batch is sent.
//
// The shim keeps at most handBatch lock descriptors open at a time, so its
// own descriptor table never grows (each growth of a multi-threaded
// process's table waits for an RCU grace period; see Start).

// handBatch is how many descriptors go in one message; handWorkers take
// and send batches at once. Two keep the shim's table below 64 (measured:
// its highest descriptor at 400 crates was 54) beside the check's workers.
const handBatch, handWorkers = 16, 2

// errHolderInput: the shim's pipe or socket closed under a command.
var errHolderInput = errors.New("holder: input ended")

// HandOff takes paths shared as Lock does, but takes the free ones in this
// process, without waiting, and hands them to the holder as it goes; the
// holder is asked for the rest. When no lock is left for the holder to
// take, HandOff returns without waiting for its answer: the locks are held
// already. The holder need not have started; Start must still be called
// before this process execs.
func (h *Holder) HandOff(paths []string, timeout time.Duration, waiting func(path string)) error {
	for _, p := range paths {
		if strings.ContainsAny(p, "\n") {
			return fmt.Errorf("lock path contains a newline: %q", p)
		}
	}
	sorted := SortPaths(paths)
	batches := (len(sorted) + handBatch - 1) / handBatch
	got, busy := make([][]*Lock, batches), make([][]string, batches)
	Parallel(handWorkers, batches, func(k int) {
		batch := sorted[k*handBatch : min((k+1)*handBatch, len(sorted))]
		got[k], busy[k] = tryShared(batch)
		if err := h.send(k, got[k]); err != nil {
			for _, l := range got[k] {
				l.Release()
				busy[k] = append(busy[k], l.path)
			}
			got[k] = nil
		}
	})
	var rest []string
	for _, b := range busy {
		rest = append(rest, b...)
	}
	if err := h.request(timeout, got, rest); err != nil {
		return err
	}
	if len(rest) == 0 {
		h.unanswered++
		return nil
	}
	return h.answer(waiting)
}

// tryShared takes what it can of batch shared without waiting; busy lists
// the paths it could not (held exclusively elsewhere, or an error the
// holder will report when it tries them).
func tryShared(batch []string) (got []*Lock, busy []string) {
	s, err := inLockDirs(batch[0], func(dirs *lockDirs) (*Set, error) {
		s := &Set{}
		busy = busy[:0]
		for _, p := range batch {
			l, err := lockAt(p, Shared, dirs)
			if err != nil {
				busy = append(busy, p)
				continue
			}
			s.locks = append(s.locks, l)
		}
		return s, nil
	})
	if err != nil {
		return nil, batch
	}
	return s.locks, busy
}

// send passes the locks' descriptors to the holder and closes ours: the
// open files, and with them the flocks, are the holder's from now on.
// Each message says which batch it is: the batches are sent in parallel.
func (h *Holder) send(batch int, locks []*Lock) error {
	if len(locks) == 0 {
		return nil
	}
	fds := make([]int, len(locks))
	for k, l := range locks {
		fds[k] = l.fd
	}
	msg := binary.LittleEndian.AppendUint32(nil, uint32(batch))
	if err := unix.Sendmsg(h.sock, msg, unix.UnixRights(fds...), nil, unix.MSG_NOSIGNAL); err != nil {
		return err
	}
	for _, l := range locks {
		unix.Close(l.fd)
		l.fd = -1
	}
	return nil
}

func pathsOf(batches [][]*Lock) []string {
	var out []string
	for _, b := range batches {
		for _, l := range b {
			out = append(out, l.path)
		}
	}
	return out
}

// holderSocket is the holder's end of the socket, its descriptor 3.
const holderSocket = 3

// lockCommand is the holder's side of a lock command ("lock <timeout ns>
// <handed>"): the handed locks' lines and descriptors, then the paths to
// take itself. On error none of them is held.
func lockCommand(in *bufio.Reader, arg string, out io.Writer) (*Set, error) {
	nsArg, handedArg, _ := strings.Cut(arg, " ")
	ns, _ := strconv.ParseInt(nsArg, 10, 64)
	nHanded, _ := strconv.Atoi(handedArg)
	var lines []string
	for {
		p, err := in.ReadString('\n')
		if err != nil {
			return nil, errHolderInput
		}
		if p == "\n" {
			break
		}
		lines = append(lines, strings.TrimSuffix(p, "\n"))
	}
	if nHanded < 0 || nHanded > len(lines) {
		return nil, fmt.Errorf("lock command: %d handed locks of %d lines", nHanded, len(lines))
	}
	handed, err := receiveLocks(lines[:nHanded])
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	cancel := func() {}
	if ns > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(ns))
	}
	defer cancel()
	s, err := AcquireSet(ctx, lines[nHanded:], Shared, Options{Waiting: func(p string) {
		fmt.Fprintf(out, "waiting %s\n", p)
	}})
	if err != nil {
		(&Set{locks: handed}).Release()
		return nil, err
	}
	s.locks = append(handed, s.locks...)
	return s, nil
}

// receiveLocks reads the handed locks' descriptors from the holder's
// socket, one per line ("<batch> <mtime ns> <read-only> <path>"), each
// message one batch's, in the order of its lines.
func receiveLocks(lines []string) ([]*Lock, error) {
	byBatch := map[uint32][]*Lock{}
	locks := make([]*Lock, len(lines))
	for k, line := range lines {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 4 {
			return nil, fmt.Errorf("lock command: bad handed lock %q", line)
		}
		batch, _ := strconv.ParseUint(f[0], 10, 32)
		mtime, _ := strconv.ParseInt(f[1], 10, 64)
		locks[k] = &Lock{fd: -1, path: f[3], mode: Shared, readOnly: f[2] == "true", mtime: mtime}
		byBatch[uint32(batch)] = append(byBatch[uint32(batch)], locks[k])
	}
	err := receiveFDs(len(lines), func(batch uint32, fds []int) error {
		ls := byBatch[batch]
		if len(ls) != len(fds) {
			return fmt.Errorf("batch %d: %d descriptors for %d locks", batch, len(fds), len(ls))
		}
		for k, fd := range fds {
			ls[k].fd = fd
		}
		return nil
	})
	if err != nil {
		(&Set{locks: locks}).Release()
		return nil, err
	}
	return locks, nil
}

// receiveFDs receives n descriptors, passing each message's to got.
func receiveFDs(n int, got func(batch uint32, fds []int) error) error {
	buf, oob := make([]byte, 4), make([]byte, unix.CmsgSpace(4*handBatch))
	for have := 0; have < n; {
		m, oobn, _, _, err := unix.Recvmsg(holderSocket, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil && (oobn == 0 || m != len(buf)) {
			err = errHolderInput
		}
		var fds []int
		if err == nil {
			fds, err = parseRights(oob[:oobn])
		}
		if err == nil {
			err = got(binary.LittleEndian.Uint32(buf), fds)
		}
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return fmt.Errorf("receiving handed-off locks: %w", err)
		}
		have += len(fds)
	}
	return nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	var fds []int
	for _, m := range msgs {
		rights, rerr := unix.ParseUnixRights(&m)
		if rerr == nil {
			fds = append(fds, rights...)
		}
	}
	return fds, err
}

// LocalLocks reports whether flocks on dir's filesystem are the kernel's
// own, arbitrated on this host alone: there a lock passes to another
// process with its open file, whatever the filesystem would make of the
// first process closing its descriptor. Network and FUSE filesystems pass
// locks to a server or a daemon and are left to the holder.
func LocalLocks(dir string) bool {
	var sfs unix.Statfs_t
	if unix.Statfs(dir, &sfs) != nil {
		return false
	}
	switch fsNames[int64(sfs.Type)] {
	case "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs": // "ext4" is ext2 and ext3 too
		return true
	}
	return false
}
