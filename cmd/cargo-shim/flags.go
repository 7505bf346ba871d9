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

// progress draws "Checking n/total" on stderr when it is a terminal.
func progress(verb string) func(done, total int) {
	if _, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	last := time.Time{}
	return func(done, total int) {
		if total < 200 || (time.Since(last) < 100*time.Millisecond && done < total) {
			return
		}
		last = time.Now()
		fmt.Fprintf(os.Stderr, "\r%12s %d/%d", verb, done, total)
		if done == total {
			fmt.Fprint(os.Stderr, "\r\x1b[K")
		}
	}
}
