package shim

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// A runner that waits says whom it waits for and what bounds the wait: on a
// filesystem shared by hosts, the holder may be a host that died, whose
// locks stay until the filesystem gives up on it. Each run's holder
// publishes a note naming the run (lockfile.PublishNote) once it holds its
// locks, off the run's path; a waiter lists the live ones.

// selfNote is this run's note.
func selfNote(cmd Command, start time.Time) lockfile.Note {
	host, _ := os.Hostname()
	sub := cmd.Sub
	if sub == "" && len(cmd.Args) > 0 {
		sub = cmd.Args[0]
	}
	return lockfile.Note{Host: host, Pid: os.Getpid(), Uid: os.Getuid(), Start: start, Command: sub}
}

// heldBy says who holds the locks a waiter waits for: the live notes of
// other runs (who, unchanged, when there are none: on one host, a process
// outside the shim), and what bounds the wait when the holder's host has
// died. Read only when a runner waits.
func (r *Run) heldBy(who string) string {
	r.waited.Store(true)
	notes := lockfile.LiveNotes(r.Reg.HoldersDir(), r.note)
	if len(notes) == 0 {
		return who
	}
	const show = 3
	s := make([]string, 0, show)
	for _, n := range notes[:min(show, len(notes))] {
		s = append(s, n.String())
	}
	out := who + "; runs holding locks here: " + strings.Join(s, "; ")
	if len(notes) > show {
		out += fmt.Sprintf("; and %d more", len(notes)-show)
	}
	if b := evictionBound(r.Reg.Root); b != "" {
		out += "; " + b
	}
	return out
}

// evictionBound says, for a filesystem shared between hosts, how long the
// locks of a host that died outlive it.
func evictionBound(root string) string {
	fs, _ := store.FilesystemOf(root)
	switch {
	case store.CephFS(fs):
		return "a host that died keeps its locks until the MDS evicts its session (session_timeout, 60 s unless changed; `cargo-shim status` shows it)"
	case fs == "fuse.glusterfs" || fs == "glusterfs":
		return "a host that died keeps its locks until the bricks drop its connection (network.ping-timeout, 42 s by default)"
	case strings.HasPrefix(fs, "nfs"):
		return "a host that died keeps its locks until its NFSv4 lease expires (90 s by default)"
	}
	return ""
}

// stallAfter is how long a run prepares before it says it is stalled.
const stallAfter = 10 * time.Second

// watchStall says once, when preparing takes longer than stallAfter without
// a waiting message, that the run is stalled and on whom it may wait. On
// CephFS a file that a host which died had created or written cannot even be
// looked up until the MDS evicts that host: the run is stuck in a system
// call, and only another goroutine can say why. The returned stop ends it.
func (r *Run) watchStall() (stop func()) {
	done := make(chan struct{})
	var once atomic.Bool
	go func() {
		select {
		case <-done:
			return
		case <-time.After(stallAfter):
		}
		if r.waited.Load() || once.Swap(true) {
			return
		}
		fs, _ := store.FilesystemOf(r.Reg.Root)
		why := "it is slow, or a host that died holds what this run reads"
		msg := r.heldBy(why)
		if b := evictionBound(r.Reg.Root); msg == why && b != "" {
			msg += "; " + b
		}
		r.Log.Status("Blocking", fmt.Sprintf("waiting for the registry's filesystem (%s) for %s (%s)", fs, stallAfter, msg))
	}()
	return func() { close(done) }
}
