package admin

import (
	"fmt"
	"sort"
	"time"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// StatsReport is `cargo-shim stats --json`: the totals, and where from.
type StatsReport struct {
	Registry string `json:"registry"`
	stats.Totals
}

// Stats reads the registry's totals; zero starts them again first.
func Stats(reg store.Registry, zero bool, now time.Time) (*StatsReport, error) {
	if zero {
		if err := stats.Zero(reg.Root, now); err != nil {
			return nil, fmt.Errorf("cannot zero the stats of %s: %w", reg.Root, err)
		}
	}
	t, err := stats.Read(reg.Root, now)
	if err != nil {
		return nil, fmt.Errorf("cannot read the stats of %s: %w", reg.Root, err)
	}
	return &StatsReport{Registry: reg.Root, Totals: t}, nil
}

// PrintStats writes the totals as a table, sccache style.
func PrintStats(out *shim.Logger, rep *StatsReport, now time.Time) {
	if out.Mode == shim.LogQuiet {
		return
	}
	w := out.W
	row := func(k, v string) { fmt.Fprintf(w, "%-32s %s\n", k, v) }
	row("Registry", rep.Registry)
	row("Since", fmt.Sprintf("%s (%s)", rep.Since.UTC().Format("2006-01-02 15:04:05 UTC"), ago(rep.Since)))
	row("Runs", fmt.Sprint(rep.AllRuns))
	row("Warm runs (nothing to do)", fmt.Sprint(rep.WarmRuns))
	row("Runs recorded", fmt.Sprint(rep.Runs))
	row("Runs that read Cargo.lock", fmt.Sprint(rep.RunsPlanned))
	row("Repairs", fmt.Sprint(rep.Repairs))
	kinds := sortedKeys(rep.Actions)
	if len(kinds) == 0 {
		row("Repairs and extractions", "0")
	}
	for _, k := range kinds {
		row("Repairs: "+k, fmt.Sprint(rep.Actions[k]))
	}
	row("Lock waits", fmt.Sprint(rep.LockWaits.Count))
	row("Lock wait time, total", seconds(rep.LockWaits.TotalSeconds))
	row("Lock wait time, longest", seconds(rep.LockWaits.LongestSeconds))
	for _, k := range sortedKeys(rep.Removals) {
		row("Removals: "+k, fmt.Sprint(rep.Removals[k]))
	}
	row("Fail-open warnings", fmt.Sprint(rep.FailOpen))
	for _, k := range sortedKeys(rep.FailOpenBy) {
		row("Fail-open: "+k, fmt.Sprint(rep.FailOpenBy[k]))
	}
	if rep.FailOpen > 0 {
		out.Help("builds ran unprotected after a warning: look for `warning: cargo-shim:` in their logs")
	}
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
