package admin

import (
	"fmt"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/events"
	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// Events reads the event log the settings name (the registry's per-uid
// logs, or CARGO_SHIM_EVENT_LOG's file), events since then, oldest first.
func Events(reg store.Registry, cfg shim.Config, since time.Time) (*events.Report, error) {
	switch {
	case strings.EqualFold(cfg.EventLog, "off"):
		return &events.Report{}, nil
	case cfg.EventLog != "":
		return events.ReadFile(cfg.EventLog, since)
	}
	return events.ReadRegistry(reg.Root, since)
}

// PrintEvents writes the events as a table, newest last. An untrusted
// event (its file's owner is not the uid it claims) shows that owner.
func PrintEvents(out, errs *shim.Logger, rep *events.Report) {
	w := out.W
	if len(rep.Events) > 0 {
		fmt.Fprintf(w, "%-20s %-9s %-22s %-32s %8s %-6s %-24s %s\n", "TIME (UTC)", "KIND", "ACTION", "CRATE", "SECONDS", "UID", "JOB", "REASON")
	}
	for _, e := range rep.Events {
		crate := e.Crate
		if e.Version != "" {
			crate += " v" + e.Version
		}
		uid := fmt.Sprint(e.UID)
		if !e.Trusted {
			uid = fmt.Sprintf("%d?%d", e.UID, e.FileUID)
		}
		shim.Fprintf(w, "%-20s %-9s %-22s %-32s %8.3f %-6s %-24s %s\n", e.Time.UTC().Format("2006-01-02 15:04:05"), e.Kind, e.Action, crate, e.Seconds, uid, e.Job, e.Reason)
	}
	if len(rep.Events) == 0 {
		fmt.Fprintln(w, "No events.")
	}
	if rep.Garbage > 0 {
		errs.Warn("%d line(s) of the event log are not events of this format; skipped", rep.Garbage)
	}
	for _, r := range rep.Refused {
		errs.Warn("not read: %s", r)
	}
	if hasUntrusted(rep) {
		errs.Help("UID a?b: the line claims uid a, its file belongs to uid b; do not trust it")
	}
}

func hasUntrusted(rep *events.Report) bool {
	for _, e := range rep.Events {
		if !e.Trusted {
			return true
		}
	}
	return false
}

// CountRemovals adds what an admin command's store calls removed (gc,
// the trash) to the registry's stats totals.
func CountRemovals(reg store.Registry, log *events.Log, now time.Time) error {
	return stats.AddRemovals(reg.Root, log.Removals(), now)
}
