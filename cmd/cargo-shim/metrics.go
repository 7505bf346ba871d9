//go:build linux

package main

import (
	"time"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

func init() {
	register(&command{
		Name:     "metrics",
		Summary:  "Write the registry's counters in the Prometheus text format",
		Args:     "[OPTIONS]",
		Registry: true,
		Help: `
The stats totals (runs, warm runs, repairs by kind, extractions, removals,
lock waits, fail-opens by reason) and the registry's size, as Prometheus
series labelled with the registry (docs/events-metrics.md lists them).

For node_exporter's textfile collector, write into its directory from a
timer: cargo-shim metrics --output /var/lib/node_exporter/cargo-shim.prom
(a temporary file in the same directory, then renamed over FILE).`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			output := fs.StringP("output", "o", "", "Write to `FILE` (atomically) instead of stdout")
			return func(c *ctx) error {
				if err := c.NeedRegistry(); err != nil {
					return err
				}
				fams, err := admin.Metrics(c.Reg, time.Now())
				if err != nil {
					return err
				}
				if *output != "" {
					return admin.WriteMetricsFile(*output, c.Reg.Root, fams)
				}
				return admin.WriteMetrics(c.Stdout, c.Reg.Root, fams)
			}
		},
	})
}
