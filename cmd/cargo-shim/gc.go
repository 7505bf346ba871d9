//go:build linux

package main

import (
	"time"

	"github.com/hashicorp/go-multierror"
	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

func init() {
	register(&command{
		Name:     "gc",
		Summary:  "Remove crates no build has used for a while, never one in use",
		Args:     "--max-age <DURATION> [OPTIONS]",
		Registry: true, JSON: true,
		Help: `
A crate is removed only under its exclusive lock, taken without waiting:
a crate any running build holds is kept, whatever its age. This replaces
cargo's own automatic cleaning, which the drop-in turns off (a home with
an old database would delete what other homes use).

Durations: 90s, 10m, 72h, 30d, 2w, 1w3d. '--max-age 0' removes every
extraction no build holds. Bytes are disk space as du counts it, each
byte once. --dry-run takes the same steps as this uid, so it lists only
what this uid may remove; what it may not is an error (permission denied,
and the fix), as in the real run.`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			maxAge := durationVar(fs, "max-age", "Remove extractions unused for longer than `DURATION` (required)")
			crateMaxAge := durationVar(fs, "crate-max-age", "Also remove .crate tarballs and unneeded git dbs unused for longer than `DURATION`")
			dry := fs.Bool("dry-run", false, "Say what would be removed and how much it frees; remove nothing")
			return func(c *ctx) error {
				if !maxAge.set {
					return usagef("the following required argument was not provided: '--max-age <DURATION>' (such as 30d)")
				}
				if err := c.NeedRegistry(); err != nil {
					return err
				}
				stop := working("Collecting")
				now := time.Now()
				o := admin.GCOptions{MaxAge: maxAge.d, CrateMaxAge: crateMaxAge.d, Tarballs: crateMaxAge.set, DryRun: *dry}
				rep, err := admin.GC(c.Reg, o, now)
				if dir := admin.GitDirOf(c.Reg); dir != "" {
					var gerr error
					rep.Git, gerr = admin.GitGC(dir, o, now)
					err = multierror.Append(err, gerr).ErrorOrNil()
				}
				stop()
				if c.JSON {
					admin.WriteJSON(c.Stdout, rep)
				} else {
					admin.PrintGC(c.Out, rep)
					if rep.Git != nil {
						admin.PrintGitGC(c.Out, rep.Git, *dry)
					}
				}
				if err != nil {
					printError(c.Err, err)
					printFix(c.Err, c.Reg.Root, err)
					return errProblems
				}
				return nil
			}
		},
	})
}
