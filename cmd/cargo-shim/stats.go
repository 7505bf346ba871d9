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
stats were last zeroed: runs (all, and warm: every crate in place), runs
that read a Cargo.lock afresh, repairs and extractions by kind, removals
by gc and the trash, lock waits (count, total, longest) and fail-open
warnings (cargo ran without the shim's full protection) by reason.

A warm build only counts itself (one byte appended to its uid's counter);
the other runs add their record to the totals. 'cargo-shim events' lists
each repair, removal and wait; 'cargo-shim metrics' writes these totals
for Prometheus.`,
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
