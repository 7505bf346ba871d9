//go:build linux

package main

import (
	"fmt"
	"os"
	"time"

	flag "github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/shim/duration"
)

// durationFlag is a flag read by duration.Parse (30d, 2w, 72h, ...); set
// says whether it was given.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if !f.set {
		return ""
	}
	return duration.Format(f.d)
}

func (f *durationFlag) Set(s string) error {
	d, err := duration.Parse(s)
	if err != nil {
		return err
	}
	f.d, f.set = d, true
	return nil
}

func (f *durationFlag) Type() string { return "duration" }

func durationVar(fs *flag.FlagSet, name, usage string) *durationFlag {
	f := &durationFlag{}
	fs.Var(f, name, usage)
	return f
}

// progressAfter is how long an operation runs before it shows progress:
// short ones stay silent, as cargo's do.
const progressAfter = 2 * time.Second

// progressOn says whether to draw progress: stderr is a terminal and
// -q was not given.
func progressOn() bool {
	if globals.quiet {
		return false
	}
	_, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	return err == nil
}

// progress draws "Checking n/total" on stderr when it is a terminal, once
// the operation has run for progressAfter; the line is cleared at the end.
func progress(verb string) func(done, total int) {
	if !progressOn() {
		return nil
	}
	start, last := time.Now(), time.Time{}
	return func(done, total int) {
		if time.Since(start) < progressAfter || (time.Since(last) < 100*time.Millisecond && done < total) {
			return
		}
		last = time.Now()
		fmt.Fprintf(os.Stderr, "\r%12s %d/%d", verb, done, total)
		if done == total {
			fmt.Fprint(os.Stderr, "\r\x1b[K")
		}
	}
}

// working draws "Collecting 12s" on stderr when it is a terminal, for an
// operation with no count, once it has run for progressAfter. stop clears
// the line and returns once nothing more will be drawn.
func working(verb string) (stop func()) {
	if !progressOn() {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		start := time.Now()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		drawn := false
		for {
			select {
			case <-done:
				if drawn {
					fmt.Fprint(os.Stderr, "\r\x1b[K")
				}
				return
			case <-t.C:
				if d := time.Since(start); d >= progressAfter {
					fmt.Fprintf(os.Stderr, "\r%12s %s", verb, d.Truncate(time.Second))
					drawn = true
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
