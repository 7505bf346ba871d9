//go:build linux

package main

import (
	"time"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

func init() {
	register(&command{
		Name:     "stats",
		Summary:  "Show what builds through the drop-in repaired and waited for",
		Args:     "[OPTIONS]",
		Registry: true, JSON: true,
		Help: `
Totals over every build through the drop-in on this registry since the
stats were last zeroed: runs that read a Cargo.lock afresh, repairs and
extractions by kind, lock waits (count, total, longest) and fail-open
warnings (cargo ran without the shim's full protection).

Only runs that did something are recorded: a warm build that found every
crate in place writes nothing.`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			zero := fs.Bool("zero", false, "Start the totals again from now (then show them)")
			return func(c *ctx) error {
				if err := c.NeedRegistry(); err != nil {
					return err
				}
				now := time.Now()
				rep, err := admin.Stats(c.Reg, *zero, now)
				if err != nil {
					return err
				}
				if c.JSON {
					return admin.WriteJSON(c.Stdout, rep)
				}
				admin.PrintStats(c.Out, rep, now)
				return nil
			}
		},
	})
}
