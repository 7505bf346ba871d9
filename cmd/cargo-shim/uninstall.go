//go:build linux

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// uninstall restores homes' cargo lock files; it needs no registry.
func init() {
	register(&command{
		Name:    "uninstall",
		Summary: "Give homes back the plain cargo lock files the shim linked",
		Args:    "[OPTIONS]",
		JSON:    true,
		Help: `
Gives each home back the plain cargo lock files the shim replaced with
links (.package-cache, .package-cache-mutate). See docs/admin.md: Uninstall.
Exit status 1 when a file was left as it was (a cargo of that home is
running, or it is not the shim's link).`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			homes := fs.StringArray("cargo-home", nil, "A CARGO_HOME `DIR` to restore (repeatable; default: $CARGO_HOME, else ~/.cargo)")
			dry := fs.Bool("dry-run", false, "Say what would be restored; change nothing")
			return func(c *ctx) error {
				if len(*homes) == 0 {
					*homes = []string{c.Cfg.CargoHome}
				}
				for _, h := range *homes {
					// A typo must not read as "nothing to restore".
					if fi, err := os.Stat(h); err != nil || !fi.IsDir() {
						return fmt.Errorf("%s is not a CARGO_HOME: %s", h, notDirReason(err))
					}
				}
				rep := admin.Uninstall(*homes, *dry)
				if c.JSON {
					admin.WriteJSON(c.Stdout, rep)
				} else {
					admin.PrintUninstall(c.Out, c.Stdout, rep)
				}
				if rep.Left() > 0 {
					return errProblems
				}
				return nil
			}
		},
	})
}

func notDirReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "it does not exist"
	case err != nil:
		return err.Error()
	}
	return "not a directory"
}
