//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
)

func init() {
	register(&command{
		Name:     "init",
		Summary:  "Make a registry shared by a group of runner uids",
		Args:     "--group <GROUP> [OPTIONS]",
		Registry: true, JSON: true,
		Help: `
Creates the registry if it is not there, gives its directories to GROUP
with the setgid bit and group write, and marks it (.cargo-shim/group) so
that every run through the drop-in keeps new files group-writable. It
makes the registry root sticky and, as root, cargo's shared lock files
root's, so that root's runs share cargo's lock with the group
(docs/package-cache-lock.md).`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			group := fs.String("group", "", "The `GROUP` whose uids share the registry: a name or a numeric gid (required)")
			return func(c *ctx) error {
				if *group == "" {
					return usagef("the following required argument was not provided: '--group <GROUP>'")
				}
				gid, err := groupshare.ResolveGroup(*group)
				if err != nil {
					return usagef("invalid value '%s' for '--group <GROUP>': %v", *group, err)
				}
				if err := os.MkdirAll(c.Reg.Root, 0o755); err != nil {
					return err
				}
				stop := working("Sharing")
				rep, err := groupshare.Init(c.Reg.Root, gid)
				stop()
				if err == nil {
					// As root: cargo's shared lock files become root's, so
					// that root's runs may share them (a no-op otherwise).
					err = c.Reg.OwnPackageCacheLock()
				}
				if c.JSON {
					admin.WriteJSON(c.Stdout, rep)
				} else if !errors.Is(err, groupshare.ErrNotAllowed) {
					c.Out.Status("Shared", fmt.Sprintf("%s with group %s (gid %d): %d directories and %d files looked at, %d changed",
						rep.Registry, rep.Group, rep.Gid, rep.Dirs, rep.Files, rep.Changed))
				}
				if err != nil && rep.FailedCount > 0 {
					for _, f := range rep.Failed {
						c.Out.Warn("not changed: %s", f)
					}
					printError(c.Err, fmt.Errorf("%d entries left as they were: %w", rep.FailedCount, err))
					return errProblems
				}
				return err
			}
		},
	})
}
