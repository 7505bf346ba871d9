package admin

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// Family is one metric of the Prometheus text exposition format: its HELP
// and TYPE lines, then its samples.
type Family struct {
	name, help, typ string
	samples         []Sample
}

type Sample struct {
	labels [][2]string // after the registry label
	value  float64
}

// Known label values, always written (zero when none yet), so that a
// series exists before its first increment and rate() sees it start.
var (
	repairKinds   = []string{store.ActReextracted, store.ActRemovedTarball, store.ActMovedAside, "left"}
	removalKinds  = []string{"gc-extraction", "gc-tarball", "gc-extraction+tarball", "trash"}
	failReasons   = []string{"lock-timeout", "lock", "registry", "plan", "holder", "repair", "share-lock", "other"}
	registryParts = []string{"src", "cache", "index", ".cargo-shim"}
)

// Metrics is the registry's stats and size as Prometheus series
// (docs/events-metrics.md lists them).
func Metrics(reg store.Registry, now time.Time) ([]Family, error) {
	t, err := stats.Read(reg.Root, now)
	if err != nil {
		return nil, fmt.Errorf("cannot read the stats of %s: %w", reg.Root, err)
	}
	counter := func(name, help string, v int64) Family {
		return Family{name, help, "counter", []Sample{{nil, float64(v)}}}
	}
	fams := []Family{
		counter("cargo_shim_runs_total", "Builds through the drop-in that checked their crates (warm runs included).", t.AllRuns),
		counter("cargo_shim_warm_runs_total", "Builds that found every crate in place: nothing repaired, nothing waited for.", t.WarmRuns),
		counter("cargo_shim_planned_runs_total", "Builds that read a Cargo.lock afresh (no plan record matched).", t.RunsPlanned),
		byLabel("cargo_shim_repairs_total", "Crates repaired by the drop-in, by kind (left: broken, nothing trusted to repair from).", "kind", t.Actions, repairKinds),
		counter("cargo_shim_extractions_total", "Cached tarballs the drop-in extracted for cargo.", t.Actions[store.ActExtracted]),
		byLabel("cargo_shim_removals_total", "Removals by cargo-shim gc and the trash, by kind.", "kind", t.Removals, removalKinds),
		counter("cargo_shim_lock_waits_total", "Lock waits of the drop-in.", t.LockWaits.Count),
		{"cargo_shim_lock_wait_seconds_total", "Time the drop-in spent waiting for locks.", "counter", []Sample{{nil, t.LockWaits.TotalSeconds}}},
		{"cargo_shim_lock_wait_longest_seconds", "The longest single lock wait since the stats were zeroed.", "gauge", []Sample{{nil, t.LockWaits.LongestSeconds}}},
		byLabel("cargo_shim_fail_open_total", "Builds that ran cargo without the shim's full protection, by the step that failed.", "reason", t.FailOpenBy, failReasons),
		{"cargo_shim_stats_since_timestamp_seconds", "When the counters started (cargo-shim stats --zero resets them).", "gauge", []Sample{{nil, float64(t.Since.Unix())}}},
		registrySize(reg),
		{"cargo_shim_registry_crates", "Crate versions in the registry (extracted or cached).", "gauge", []Sample{{nil, float64(len(reg.AllInstances()))}}},
	}
	return fams, nil
}

// byLabel is one counter per label value: the known ones, and any other
// the totals hold, sorted.
func byLabel(name, help, label string, m map[string]int64, known []string) Family {
	vals := append([]string(nil), known...)
	for k := range m {
		if !contains(known, k) {
			vals = append(vals, k)
		}
	}
	sort.Strings(vals[len(known):])
	f := Family{name: name, help: help, typ: "counter"}
	for _, v := range vals {
		f.samples = append(f.samples, Sample{[][2]string{{label, v}}, float64(m[v])})
	}
	return f
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// registrySize is the registry's disk use as du counts it, by part.
func registrySize(reg store.Registry) Family {
	f := Family{name: "cargo_shim_registry_bytes", help: "Disk space of the registry as du counts it, by part (src, cache, index, .cargo-shim).", typ: "gauge"}
	for _, p := range registryParts {
		f.samples = append(f.samples, Sample{[][2]string{{"part", p}}, float64(reg.DiskUsage(filepath.Join(reg.Root, p)))})
	}
	return f
}

// WriteMetrics writes fams in the text exposition format, every sample
// labelled with the registry.
func WriteMetrics(w io.Writer, registry string, fams []Family) error {
	var b strings.Builder
	for _, f := range fams {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
		for _, s := range f.samples {
			b.WriteString(f.name + `{registry="` + escapeLabel(registry) + `"`)
			for _, l := range s.labels {
				b.WriteString("," + l[0] + `="` + escapeLabel(l[1]) + `"`)
			}
			b.WriteString("} " + strconv.FormatFloat(s.value, 'g', -1, 64) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// The format's escapes: in HELP, backslash and newline; in label values,
// also the double quote.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// WriteMetricsFile replaces path with the metrics as node_exporter's
// textfile collector wants it: a temporary file in the same directory,
// renamed over path, so the collector never reads half a file.
func WriteMetricsFile(path, registry string, fams []Family) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = WriteMetrics(tmp, registry, fams)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
