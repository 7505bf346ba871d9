//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/duration"
)

func init() {
	register(&command{
		Name:     "events",
		Summary:  "List what builds and admin commands repaired, removed, waited for",
		Args:     "[OPTIONS]",
		Registry: true, JSON: true,
		Help: `
One event per repair, extraction, removal (gc, the trash), lock wait of
at least CARGO_SHIM_EVENT_LOCK_WAIT (default 1s) and fail-open (cargo ran
without the shim's protection), oldest first, from the registry's per-uid
logs (.cargo-shim/events/<uid>.jsonl, 1 MiB each plus one rotated file) or
the file CARGO_SHIM_EVENT_LOG names. Quiet builds record them too.

With --json, one JSON object per line (docs/events-metrics.md). An event
whose file belongs to another uid than the one it claims is marked
untrusted ("trusted": false; UID a?b in the table).`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			since := fs.String("since", "", "Only events after `WHEN`: a duration ago (90m, 2d) or a time (2026-01-02, 2026-01-02T15:04:05Z)")
			return func(c *ctx) error {
				now := time.Now()
				from, err := parseSince(*since, now)
				if err != nil {
					return usagef("invalid value '%s' for '--since <WHEN>': %v", *since, err)
				}
				if err := c.NeedRegistry(); err != nil {
					return err
				}
				rep, err := admin.Events(c.Reg, c.Cfg, from)
				if err != nil {
					return err
				}
				if !c.JSON {
					admin.PrintEvents(c.Out, c.Err, rep)
					return nil
				}
				enc := json.NewEncoder(c.Stdout)
				for _, e := range rep.Events {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
		},
	})
}

// parseSince reads --since: empty is the beginning, a duration is that long
// before now, else an RFC 3339 time or a date (UTC).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := duration.Parse(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("want a duration (90m, 2d) or a time (2026-01-02T15:04:05Z)")
}
