//go:build linux

package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-multierror"
	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

func init() {
	register(&command{
		Name:     "repair",
		Summary:  "Repair what verify finds, each crate under its lock",
		Args:     "[OPTIONS]",
		Registry: true, JSON: true,
		Help: `
Each broken crate is repaired under its exclusive lock, so a build using
it finishes first (up to CARGO_SHIM_LOCK_TIMEOUT, default 10m; 0 waits
forever). A broken extraction is unpacked again from a verified tarball;
with no trusted tarball it is moved aside and cargo downloads it again. A
truncated tarball under a broken extraction is removed for cargo to
download again; under a healthy one it is reported and kept (cargo never
reads it, and --offline builds need it). A tarball with another checksum
is reported and kept.

Exit status 1 when something is left broken (a kept truncated tarball is
listed, but is not broken for cargo). A uid that cannot write the registry
gets the error (permission denied on the path) and the fix (cargo-shim
init --group).`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			lockfiles := fs.StringArray("lockfile", nil, "Repair only the crates this Cargo.lock `FILE` names (repeatable)")
			deep := fs.Bool("deep", false, "Also repair files whose content differs from the tarball")
			return func(c *ctx) error {
				if err := c.NeedRegistry(); err != nil {
					return err
				}
				targets, err := admin.Targets(c.Reg, *lockfiles)
				if err != nil {
					return err
				}
				ctx := context.Background()
				if c.Cfg.LockTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, c.Cfg.LockTimeout)
					defer cancel()
				}
				rep, err := admin.Repair(ctx, c.Reg, targets, *deep, func(i store.Instance, what store.WaitFor) {
					c.Err.Line(shim.Note, "Blocking", fmt.Sprintf("waiting for lock on %s %s (in use by a running build)", what, i.Crate))
				}, progress("Checking"))
				gitLeft := false
				if dir := admin.GitDirOf(c.Reg); dir != "" {
					var gerr error
					rep.Git, gerr = admin.RepairGit(ctx, dir, *lockfiles, func(p string) {
						c.Err.Line(shim.Note, "Blocking", "waiting for lock on git checkout "+p+" (in use by a running build)")
					})
					err = multierror.Append(err, gerr).ErrorOrNil()
					gitLeft = rep.Git != nil && len(rep.Git.Problems) > 0
				}
				if c.JSON {
					admin.WriteJSON(c.Stdout, rep)
				} else {
					admin.PrintRepair(c.Out, rep)
					if rep.Git != nil {
						admin.PrintGit(c.Out, rep.Git, "Checked")
					}
				}
				if err != nil {
					printError(c.Err, err)
					printFix(c.Err, c.Reg.Root, err)
				}
				if rep.NeedsAttention() || gitLeft || err != nil {
					return errProblems
				}
				return nil
			}
		},
	})
}
