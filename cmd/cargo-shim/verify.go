//go:build linux

package main

import (
	"strings"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

func init() {
	register(&command{
		Name:     "verify",
		Summary:  "Check the registry's crates against their tarballs; change nothing",
		Args:     "[OPTIONS]",
		Registry: true, JSON: true,
		Help: `
By default every file of every extraction is looked at (its size against
the tarball's list). --fast checks only what every build through the
drop-in checks; --deep also reads every tarball and compares file contents.

Each problem is one line on stdout naming the crate, its version and what
is wrong. Exit status 1 when there are problems a build trips over: run
'cargo-shim repair'. A truncated tarball under a healthy extraction is
listed as a warning (exit status 0): cargo never reads it, --offline builds
need it, and the next online build through the drop-in downloads it again;
repair keeps it too. A missing extraction is not a problem: cargo unpacks
the tarball again, or downloads the crate.`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			lockfiles := fs.StringArray("lockfile", nil, "Check only the crates this Cargo.lock `FILE` names, against its checksums (repeatable)")
			fast := fs.Bool("fast", false, "Trust crates whose recorded stamps are unchanged, as builds do (misses files rewritten in place)")
			deep := fs.Bool("deep", false, "Also check each tarball's sha256 and every file's content against it")
			return func(c *ctx) error {
				if *fast && *deep {
					return usagef("the argument '--fast' cannot be used with '--deep'")
				}
				if err := c.NeedRegistry(); err != nil {
					return err
				}
				level := store.Files
				switch {
				case *deep:
					level = store.Deep
				case *fast:
					level = store.Fast
				}
				targets, err := admin.Targets(c.Reg, *lockfiles)
				if err != nil {
					return err
				}
				rep := admin.Verify(c.Reg, targets, level, progress("Checking"))
				if dir := admin.GitDirOf(c.Reg); dir != "" {
					if rep.Git, err = admin.VerifyGit(dir, *lockfiles, level); err != nil {
						return err
					}
				}
				if c.JSON {
					admin.WriteJSON(c.Stdout, rep)
				} else {
					admin.PrintVerify(c.Out, rep, repairCommand(c, *lockfiles, *deep))
					if rep.Git != nil {
						admin.PrintGit(c.Out, rep.Git, "Verified")
					}
				}
				if rep.NeedsAttention() || rep.Git != nil && len(rep.Git.Problems) > 0 {
					return errProblems
				}
				return nil
			}
		},
	})
}

// repairCommand is the command line that repairs what verify found.
func repairCommand(c *ctx, lockfiles []string, deep bool) string {
	parts := []string{"cargo-shim repair"}
	if c.Explicit {
		parts = append(parts, "--registry "+shellQuote(c.Reg.Root))
	}
	for _, l := range lockfiles {
		parts = append(parts, "--lockfile "+shellQuote(l))
	}
	if deep {
		parts = append(parts, "--deep")
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
