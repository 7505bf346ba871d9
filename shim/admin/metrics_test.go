package admin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/safefs"
	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// checkExposition parses text by the Prometheus text exposition format's
// rules, line by line, and returns the samples by "name{labels}":
// HELP and TYPE at most once per metric and before its samples, a known
// type, a metric's samples in one group, valid metric and label names,
// label values with only \\, \" and \n escapes, values Go can parse as
// floats (Inf and NaN spelled as the format does), no duplicate series,
// counters named _total, and a final newline.
func checkExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("the text does not end with a newline")
	}
	samples := map[string]float64{}
	help, typ := map[string]bool{}, map[string]string{}
	done := map[string]bool{} // metrics whose group of samples has ended
	current := ""
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(f string, a ...any) { t.Fatalf("line %d %q: %s", n+1, line, fmt.Sprintf(f, a...)) }
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "# HELP "), strings.HasPrefix(line, "# TYPE "):
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 || !metricName.MatchString(f[2]) {
				fail("malformed")
			}
			name := f[2]
			if done[name] || name == current {
				fail("HELP or TYPE after the metric's samples")
			}
			if f[1] == "HELP" {
				if help[name] {
					fail("second HELP")
				}
				help[name] = true
				if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(f[3], `\\`, ""), `\n`, ""), `\`) {
					fail("bad escape in HELP")
				}
				continue
			}
			if typ[name] != "" {
				fail("second TYPE")
			}
			switch f[3] {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				fail("unknown type %q", f[3])
			}
			if f[3] == "counter" && !strings.HasSuffix(name, "_total") {
				fail("a counter not named _total")
			}
			typ[name] = f[3]
		case strings.HasPrefix(line, "#"):
			continue // a comment
		default:
			name, labels, value := parseSample(t, line)
			if name != current {
				if done[name] {
					fail("samples of %s not in one group", name)
				}
				if current != "" {
					done[current] = true
				}
				current = name
			}
			if typ[name] == "" || !help[name] {
				fail("sample without HELP and TYPE")
			}
			key := name + "{" + labels + "}"
			if _, dup := samples[key]; dup {
				fail("duplicate series")
			}
			samples[key] = value
		}
	}
	return samples
}

// parseSample reads `name{l="v",...} value [timestamp]`.
func parseSample(t *testing.T, line string) (name, labels string, value float64) {
	t.Helper()
	fail := func(why string) { t.Fatalf("sample %q: %s", line, why) }
	k := strings.IndexAny(line, "{ ")
	if k < 0 {
		fail("no value")
	}
	name, rest := line[:k], line[k:]
	if !metricName.MatchString(name) {
		fail("bad metric name")
	}
	var names []string
	if rest[0] == '{' {
		rest = rest[1:]
		for rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || !labelName.MatchString(rest[:eq]) || len(rest) < eq+2 || rest[eq+1] != '"' {
				fail("bad label")
			}
			names = append(names, rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			for {
				if rest == "" {
					fail("unterminated label value")
				}
				c := rest[0]
				if c == '"' {
					rest = rest[1:]
					break
				}
				if c == '\n' {
					fail("raw newline in a label value")
				}
				if c == '\\' {
					if len(rest) < 2 || !strings.ContainsRune(`\"n`, rune(rest[1])) {
						fail("bad escape in a label value")
					}
					val.WriteByte(rest[1])
					rest = rest[2:]
					continue
				}
				val.WriteByte(c)
				rest = rest[1:]
			}
			labels += names[len(names)-1] + "=" + strconv.Quote(val.String()) + ","
			if rest != "" && rest[0] == ',' {
				rest = rest[1:]
			}
		}
		rest = rest[1:]
	}
	seen := map[string]bool{}
	for _, l := range names {
		if seen[l] || strings.HasPrefix(l, "__") {
			fail("duplicate or reserved label name")
		}
		seen[l] = true
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 || !strings.HasPrefix(rest, " ") {
		fail("want one value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		fail("value: " + err.Error())
	}
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			fail("timestamp: " + err.Error())
		}
	}
	return name, labels, v
}

// The metrics text is valid exposition format, with every documented
// series, and the numbers the stats hold.
func TestMetricsExposition(t *testing.T) {
	root := filepath.Join(t.TempDir(), `odd "reg"\dir`)
	for _, d := range []string{"src", "cache", "index"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "cache", "x"), bytes.Repeat([]byte("x"), 10000), 0o644)
	now := time.Now()
	rec := stats.Record{Planned: true}
	rec.Act(store.ActReextracted)
	rec.Act(store.ActExtracted)
	rec.Wait(1500 * time.Millisecond)
	rec.Fail("lock-timeout")
	if err := stats.Add(root, rec, now); err != nil {
		t.Fatal(err)
	}
	stats.AddRemovals(root, map[string]int{"trash": 2}, now)
	d, _ := safefs.OpenRoot(root)
	defer d.Close()
	for n := 0; n < 3; n++ {
		stats.CountWarm(d, now)
	}
	reg := store.Registry{Root: root}
	fams, err := Metrics(reg, now)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteMetrics(&b, root, fams)
	got := checkExposition(t, b.String())
	r := `registry=` + strconv.Quote(root) + `,`
	want := map[string]float64{
		"cargo_shim_runs_total{" + r + "}":                            4,
		"cargo_shim_warm_runs_total{" + r + "}":                       3,
		"cargo_shim_planned_runs_total{" + r + "}":                    1,
		"cargo_shim_repairs_total{" + r + `kind="reextracted",}`:      1,
		"cargo_shim_repairs_total{" + r + `kind="moved-aside",}`:      0,
		"cargo_shim_extractions_total{" + r + "}":                     1,
		"cargo_shim_removals_total{" + r + `kind="trash",}`:           2,
		"cargo_shim_lock_waits_total{" + r + "}":                      1,
		"cargo_shim_lock_wait_seconds_total{" + r + "}":               1.5,
		"cargo_shim_fail_open_total{" + r + `reason="lock-timeout",}`: 1,
		"cargo_shim_fail_open_total{" + r + `reason="registry",}`:     0,
		"cargo_shim_registry_crates{" + r + "}":                       0,
		"cargo_shim_stats_since_timestamp_seconds{" + r + "}":         float64(now.Unix()),
		"cargo_shim_lock_wait_longest_seconds{" + r + "}":             1.5,
		"cargo_shim_registry_bytes{" + r + `part=".cargo-shim",}`:     got["cargo_shim_registry_bytes{"+r+`part=".cargo-shim",}`],
		"cargo_shim_registry_bytes{" + r + `part="index",}`:           got["cargo_shim_registry_bytes{"+r+`part="index",}`],
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v\n%s", k, g, ok, v, b.String())
		}
	}
	if c := got["cargo_shim_registry_bytes{"+r+`part="cache",}`]; c < 10000 {
		t.Errorf("cache bytes %v, want at least the 10000 written", c)
	}
	// --output: the file appears whole, and nothing else is left beside it.
	out := filepath.Join(t.TempDir(), "cargo-shim.prom")
	if err := WriteMetricsFile(out, root, fams); err != nil {
		t.Fatal(err)
	}
	if f, _ := os.ReadFile(out); string(f) != b.String() {
		t.Fatal("the file differs from stdout")
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}
