//go:build linux

package main

import (
	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

func init() {
	register(&command{
		Name:     "status",
		Summary:  "Show the setup, the registry and the locks held now",
		Args:     "[OPTIONS]",
		Registry: true, JSON: true,
		Help: `
Says whether 'cargo' on PATH is the drop-in and which real cargo it runs,
the registry's filesystem and whether its locks reach other hosts, how
many crates it holds, and which builds hold locks now.

Exit status 1 when something needs attention (each is a warning line with
a help line): the drop-in is not first on PATH, there is no real cargo,
or the registry is on a network filesystem whose locks stay on one host.`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			return func(c *ctx) error {
				// A registry not created yet is reported, unless it was
				// named: then it is a mistake.
				if err := c.NeedRegistry(); err != nil && c.Explicit {
					return err
				}
				st := admin.Status(c.Reg, c.Cfg.CargoHome, c.Mismatch)
				if c.JSON {
					admin.WriteJSON(c.Stdout, st)
				} else {
					admin.PrintStatus(c.Out, st)
				}
				if len(st.Attention) > 0 {
					return errProblems
				}
				return nil
			}
		},
	})
}
