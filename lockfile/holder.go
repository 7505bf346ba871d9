package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The holder is a small process that owns a build's shared locks. The shim
// execs cargo in its own process, so the locks must live somewhere that (a)
// outlives the exec, (b) is not inherited by cargo, rustc, build scripts or a
// daemon such as sccache they start, and (c) dies with cargo. A child process
// that holds the locks and exits when its parent pid — cargo after the exec —
// exits, does all three. It is not started with the shim's descriptors
// inherited: the shim, multi-threaded from its first instruction, would pay
// an RCU grace period to grow its descriptor table for hundreds of locks (see
// Start). It takes the locks itself, or is handed them a batch at a time over
// a socket (HandOff). SIGKILL of the holder releases the locks: a lock can
// never outlive every process that holds it.

// HolderEnv marks a process started as a holder.
const HolderEnv = "CARGO_SHIM_HOLDER"

// IsHolder reports whether this process was started as a holder.
func IsHolder() bool { return os.Getenv(HolderEnv) == "1" }

// Holder is the shim's handle on its holder process.
type Holder struct {
	exe  string
	n    int // about how many locks it will hold
	pid  int
	cmd  *os.File
	resp *bufio.Reader
	// sock is our end of the socket locks are handed over on (HandOff);
	// child are the holder's ends until Start has passed them on.
	sock  int
	child []*os.File
	// unanswered: commands sent whose answer nobody has read yet.
	unanswered int
}

// StartHolder starts exe (a binary whose main calls RunHolder when IsHolder)
// as a holder that will hold about n locks. It does not wait for it to be
// ready.
func StartHolder(exe string, n int) (*Holder, error) {
	h, err := NewHolder(exe, n)
	if err != nil {
		return nil, err
	}
	return h, h.Start()
}

// NewHolder prepares a holder without starting it: its pipes and its
// descriptor socket exist, so commands and handed-off locks (HandOff) can be
// queued at once while Start forks in another goroutine. Start must be
// called, once, before anything waits for an answer.
func NewHolder(exe string, n int) (*Holder, error) {
	h := &Holder{exe: exe, n: n}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, err
	}
	// SEQPACKET: each batch of descriptors arrives as one message. Ours
	// does not block: a full socket hands the rest over by path instead.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.SetNonblock(pair[0], true)
	}
	if err != nil {
		for _, f := range []*os.File{cmdR, cmdW, respR, respW} {
			f.Close()
		}
		return nil, err
	}
	h.cmd, h.resp, h.sock = cmdW, bufio.NewReader(respR), pair[0]
	h.child = []*os.File{cmdR, respW, os.NewFile(uintptr(pair[1]), "holder socket")}
	for _, root := range beneathRoots() {
		// A few hundred bytes: the pipe buffer takes them without blocking.
		if !strings.ContainsAny(root, "\n") {
			fmt.Fprintf(cmdW, "beneath %s\n", root)
		}
	}
	return h, nil
}

// Start forks and execs the holder.
//
// Sizing: a multi-threaded process (every Go program) that grows its file
// descriptor table waits for an RCU grace period each time (fs/file.c:
// expand_fdtable calls synchronize_rcu when the table is shared); measured,
// 400 locks took 15.8 ms in a fresh holder against 3 ms in a warm process.
// So the holder is started with its table already large enough: an extra
// descriptor at fd n+32 makes the child, still single-threaded before exec,
// grow it once for free.
func (h *Holder) Start() error {
	devnull, err := os.Open(os.DevNull)
	if err == nil {
		defer devnull.Close()
		h.pid, err = h.forkExec(devnull)
	}
	for _, f := range h.child {
		f.Close() // the holder has its own copies; ours would keep its pipes open
	}
	if err != nil {
		// Not our end of the socket: HandOff may be sending on it. The
		// holder's end is closed, which drops whatever was handed off.
		h.cmd.Close()
		return &os.PathError{Op: "fork/exec", Path: h.exe, Err: err}
	}
	return nil
}

func (h *Holder) forkExec(devnull *os.File) (int, error) {
	base := []uintptr{h.child[0].Fd(), h.child[1].Fd(), devnull.Fd(), h.child[2].Fd()}
	files := base
	if h.n > 16 {
		files = make([]uintptr, h.n+32)
		for k := range files {
			files[k] = closed
		}
		copy(files, base)
		files[len(files)-1] = devnull.Fd()
	}
	// syscall.ForkExec, not os.StartProcess: the latter first probes pidfd
	// support with a clone of its own, for a process handle (a pid, Kill
	// and Wait4 are all the shim needs).
	attr := &syscall.ProcAttr{
		Dir: "/",
		Env: []string{HolderEnv + "=1", fmt.Sprintf("%s_PARENT=%d", HolderEnv, os.Getpid()),
			fmt.Sprintf("%s_PAD=%d", HolderEnv, len(files)-1)},
		Files: files,
		// Its own session: a Ctrl-C or a signal to cargo's process group
		// must not release the locks before cargo itself has exited.
		Sys: &syscall.SysProcAttr{Setsid: true},
	}
	pid, err := syscall.ForkExec(h.exe, []string{"cargo-shim-holder"}, attr)
	if err != nil && len(files) > len(base) {
		// Beyond the child's descriptor limit: start it unpadded.
		attr.Files, attr.Env = base, attr.Env[:2]
		pid, err = syscall.ForkExec(h.exe, []string{"cargo-shim-holder"}, attr)
	}
	return pid, err
}

// Pid of the holder process.
func (h *Holder) Pid() int { return h.pid }

// closed marks a descriptor the holder starts without.
const closed = ^uintptr(0)

// Lock asks the holder to take shared locks on paths (it sorts and
// de-duplicates them, in AcquireSet) and waits until it has them. timeout 0 waits forever. waiting is called
// with the path the holder is blocked on after about a second.
func (h *Holder) Lock(paths []string, timeout time.Duration, waiting func(path string)) error {
	if err := h.request(timeout, nil, paths); err != nil {
		return err
	}
	return h.answer(waiting)
}

// request sends a lock command: the locks handed over already (HandOff),
// then the paths the holder is to lock itself.
func (h *Holder) request(timeout time.Duration, handed [][]*Lock, paths []string) error {
	if err := h.drain(); err != nil {
		return err
	}
	handedPaths := pathsOf(handed)
	for _, ps := range [][]string{paths, handedPaths} {
		for _, p := range ps {
			if strings.IndexByte(p, '\n') >= 0 {
				return fmt.Errorf("lock path contains a newline: %q", p)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lock %d %d\n", timeout.Nanoseconds(), len(handedPaths))
	for batch, ls := range handed {
		for _, l := range ls {
			fmt.Fprintf(&b, "%d %d %t %s\n", batch, l.mtime, l.readOnly, l.path)
		}
	}
	for _, p := range paths {
		b.WriteString(p)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(h.cmd, b.String()); err != nil {
		return fmt.Errorf("holder: %w", err)
	}
	return nil
}

// answer reads the holder's answer to one lock command.
func (h *Holder) answer(waiting func(path string)) error {
	for {
		line, err := h.resp.ReadString('\n')
		if err != nil {
			return fmt.Errorf("holder exited: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "ok":
			return nil
		case "waiting":
			if waiting != nil {
				waiting(rest)
			}
		case "timeout":
			return &os.PathError{Op: "lock", Path: rest, Err: context.DeadlineExceeded}
		default:
			return errors.New("holder: " + rest)
		}
	}
}

// drain reads the answers HandOff did not wait for: the next command must
// not take one of them for its own.
func (h *Holder) drain() error {
	for ; h.unanswered > 0; h.unanswered-- {
		if err := h.answer(nil); err != nil {
			h.unanswered--
			return err
		}
	}
	return nil
}

// Release asks the holder to drop every lock it holds, and waits for it.
func (h *Holder) Release() error {
	if err := h.drain(); err != nil {
		return err
	}
	if _, err := io.WriteString(h.cmd, "release\n"); err != nil {
		return err
	}
	line, err := h.resp.ReadString('\n')
	if err != nil || line != "released\n" {
		return fmt.Errorf("holder: release: %q %v", line, err)
	}
	return nil
}

// Hold tells the holder to keep its locks until this process — about to be
// replaced by cargo through exec — exits. Nothing may be asked of it after.
func (h *Holder) Hold() error {
	_, err := io.WriteString(h.cmd, "hold\n")
	h.cmd.Close()
	unix.Close(h.sock) // what is queued on it stays the holder's to read
	return err
}

// Stop ends the holder, releasing whatever it holds.
func (h *Holder) Stop() {
	h.cmd.Close()
	unix.Close(h.sock)
	_ = syscall.Kill(h.pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(h.pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
}

// RunHolder is the holder's main: it reads commands on stdin and answers on
// stdout. It returns the exit code.
func RunHolder() int {
	if pad, err := strconv.Atoi(os.Getenv(HolderEnv + "_PAD")); err == nil && pad > 3 {
		unix.Close(pad) // only there to size the descriptor table
	}
	parent := os.Getppid()
	if want, err := strconv.Atoi(os.Getenv(HolderEnv + "_PARENT")); err == nil && want != parent {
		// The shim handed its locks off, execed cargo, and cargo has
		// exited before we started: there is nothing left to hold for,
		// and waiting for our new parent would hold them for ever.
		return 0
	}
	// The shim may exec cargo before reading our answer (HandOff): an
	// answer to a closed pipe must fail, not kill the holder.
	signal.Ignore(syscall.SIGPIPE)
	in := bufio.NewReader(os.Stdin)
	out := os.Stdout
	var held *Set
	var note heldNote
	defer note.remove()
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			// The shim died or gave up on us: dying releases everything.
			return 0
		}
		verb, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		switch verb {
		case "lock":
			s, err := lockCommand(in, arg, out)
			var pe *os.PathError
			switch {
			case err == nil:
				if held != nil {
					held.Release()
				}
				held = s
				fmt.Fprintln(out, "ok")
			case errors.Is(err, errHolderInput):
				return 0
			case errors.Is(err, context.DeadlineExceeded) && errors.As(err, &pe):
				fmt.Fprintf(out, "timeout %s\n", pe.Path)
			default:
				fmt.Fprintf(out, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			}
		case "note":
			note.dir, note.note, note.ok = splitNote(arg)
		case "beneath":
			// No answer: a root that cannot be opened makes its locks fail.
			_ = Beneath(arg)
		case "release":
			if held != nil {
				held.Release()
				held = nil
			}
			fmt.Fprintln(out, "released")
		case "hold":
			if held != nil {
				held.Touch(time.Now(), time.Hour)
			}
			// The note is for runners that wait while cargo runs: a
			// no-op build is over before it would help, and on a network
			// filesystem making and removing it costs its own round trips.
			waitForExit(parent, noteAfter, note.publish)
			return 0
		default:
			fmt.Fprintf(out, "error unknown command %q\n", verb)
		}
	}
}

// Note asks the holder to publish n in dir (see PublishNote) once it holds
// locks, and to remove it when it exits.
func (h *Holder) Note(dir string, n Note) {
	if !strings.ContainsAny(dir, "\n\t") {
		// A few hundred bytes: the pipe buffer takes them without blocking.
		fmt.Fprintf(h.cmd, "note %s\t%s\n", dir, n.Name()+NoteSuffix)
	}
}

func splitNote(arg string) (string, Note, bool) {
	dir, name, _ := strings.Cut(arg, "\t")
	n, ok := ParseNote(name)
	return dir, n, ok
}

// heldNote is the holder's own note: published once, removed at exit.
type heldNote struct {
	dir  string
	note Note
	ok   bool
	f    *os.File
}

func (n *heldNote) publish() {
	if n.f == nil && n.ok {
		n.f, _ = PublishNote(n.dir, n.note)
	}
}

func (n *heldNote) remove() {
	if n.f != nil {
		RemoveNote(n.f, n.dir, n.note)
		n.f = nil
	}
}

// noteAfter is how long cargo runs before the holder publishes its note.
const noteAfter = 2 * time.Second

// waitForExit returns when process pid, our parent, has exited, calling
// meanwhile, once it has run for after, at once without a pidfd. A pidfd
// wakes us exactly at exit; after opening it, the parent check rules out a
// recycled pid (had the parent already died we would have been reparented).
func waitForExit(pid int, after time.Duration, meanwhile func()) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(fd)
		if os.Getppid() != pid {
			return
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		timeout := int(after.Milliseconds())
		for {
			n, err := unix.Poll(fds, timeout)
			if err == nil && n == 0 {
				meanwhile()
				timeout = -1
				continue
			}
			if err == nil {
				return
			}
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	// Kernels without pidfd (< 5.3): poll for reparenting.
	meanwhile()
	for os.Getppid() == pid {
		time.Sleep(100 * time.Millisecond)
	}
}
