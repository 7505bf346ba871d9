package integration

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
	"github.com/cargo-shim/cargo-shim/shim/events"
)

// readEvents runs `cargo-shim events --json` and decodes its lines.
func (w *World) readEvents(args ...string) []events.Read {
	w.t.Helper()
	r := w.Admin(append([]string{"events", "--json"}, args...)...)
	if r.Code != 0 {
		w.t.Fatalf("cargo-shim events: %s", r)
	}
	var out []events.Read
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	for sc.Scan() {
		var e events.Read
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			w.t.Fatalf("a line of events --json does not parse: %v: %q", err, sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// metric is the value of the series of `cargo-shim metrics` whose name
// and labels (after the registry's) match, -1 when there is none.
func metric(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// A repair in a quiet build (-q prints nothing of it) still leaves one
// event naming the crate, version, regdir, kind and job, which `cargo-shim
// events --json` shows; the metrics count the repair, the runs and the
// warm runs (the denominator of a repair rate).
func TestQuietRepairIsRecorded(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	home := w.Home()
	w.MustCargo(home, true, "build") // reads Cargo.lock, records the plan
	w.MustCargo(home, true, "build") // warm: counted, nothing written but a byte
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	r := w.Cargo(home, true, []string{"build", "-q"}, "CARGO_SHIM_JOB=job-42", "GITHUB_RUN_ID=1", "GITHUB_JOB=x")
	if r.Code != 0 {
		t.Fatalf("quiet build through the shim: %s", r)
	}
	if strings.Contains(r.Stderr, "Repairing") {
		t.Fatalf("-q printed the repair: %s", r.Stderr)
	}
	var found *events.Read
	for _, e := range w.readEvents() {
		if e.Kind == events.KindRepair && e.Crate == "flat" {
			found = &e
		}
	}
	if found == nil {
		t.Fatalf("no repair event for flat")
	}
	if found.Version != "1.0.0" || found.Regdir != w.Regdir || found.Action != "reextracted" || found.Job != "job-42" ||
		found.Reason != "lib.rs missing" || found.UID != 0 || !found.Trusted || found.PID == 0 || found.Program != "cargo" {
		t.Fatalf("repair event: %+v", *found)
	}
	// A job id from the CI's own variables when CARGO_SHIM_JOB is unset.
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
	w.Cargo(home, true, []string{"build", "-q"}, "GITHUB_RUN_ID=77", "GITHUB_JOB=test")
	evs := w.readEvents("--since", "1h")
	if last := evs[len(evs)-1]; last.Job != "github:77/test" {
		t.Fatalf("newest event's job %q, want github:77/test", last.Job)
	}

	m := w.Admin("metrics")
	if m.Code != 0 {
		t.Fatalf("cargo-shim metrics: %s", m)
	}
	reg := `{registry="` + w.Shared + `"`
	if got := metric(t, m.Stdout, "cargo_shim_repairs_total"+reg+`,kind="reextracted"}`); got != 2 {
		t.Errorf("repairs_total{kind=reextracted} = %v, want 2\n%s", got, m.Stdout)
	}
	if got := metric(t, m.Stdout, "cargo_shim_warm_runs_total"+reg+`}`); got != 1 {
		t.Errorf("warm_runs_total = %v, want 1", got)
	}
	if got := metric(t, m.Stdout, "cargo_shim_runs_total"+reg+`}`); got != 4 {
		t.Errorf("runs_total = %v, want 4 (1 planned, 1 warm, 2 repairs)", got)
	}
	st := w.Admin("stats", "--json")
	if !strings.Contains(st.Stdout, `"runs": 4`) || !strings.Contains(st.Stdout, `"repairs": 2`) {
		t.Errorf("stats --json lacks runs or repairs: %s", st.Stdout)
	}
}

// Rule: another uid's FIFO or symlink at root's event log or warm counter
// neither hangs a root build nor is followed; a 100 MiB file of garbage
// in the events directory does not make `cargo-shim events` read it whole
// (its peak memory stays far below the file), and a line another uid
// wrote claiming uid 0 is shown untrusted.
func TestHostileEventLog(t *testing.T) {
	w := hostileWorld(t)
	decoy, snap := w.decoy()
	w.MustCargo(w.Home(), true, "build")
	for _, plant := range []string{`mkfifo "$1"`, `ln -s "$DECOY/flat-1.0.0.crate" "$1"`} {
		w.mustAttack(`mkdir -p -m 1777 .cargo-shim/events .cargo-shim/stats
			set -- .cargo-shim/events/0.jsonl; rm -f "$1"; `+plant+`
			set -- .cargo-shim/stats/warm.0; rm -f "$1"; `+plant, decoy)
		rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))
		home := w.Home()
		w.realBuildIn(home, decoy, snap) // a repair: its event refused
		w.MustCargo(home, true, "build") // warm: its count refused
		safefstest.Unchanged(t.Errorf, decoy, snap)
	}
	// With the symlinks in place: gc's removal events refused too.
	if r := w.Admin("gc", "--max-age", "0"); r.Code != 0 {
		t.Fatalf("gc: %s", r)
	}
	safefstest.Unchanged(t.Errorf, decoy, snap)
	// 100 MiB of garbage in uid 65534's own log, and a forged line.
	w.mustAttack(`head -c 104857600 /dev/zero | tr '\0' 'x' > .cargo-shim/events/65534.jsonl
		printf '\n{"v":1,"time":"2026-01-01T00:00:00Z","kind":"repair","crate":"forged","uid":0,"pid":1,"duration_seconds":0}\n' >> .cargo-shim/events/65534.jsonl`, decoy)
	cmd := exec.Command(filepath.Join(binDir, "cargo-shim"), "events", "--json")
	cmd.Env = append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cargo-shim events with a 100 MiB file: %v", err)
	}
	if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10; rss > 48<<20 {
		t.Errorf("cargo-shim events peaked at %d MiB reading a 100 MiB file: not bounded", rss>>20)
	}
	if !regexp.MustCompile(`"crate":"forged".*"file_uid":65534.*"trusted":false`).Match(out) {
		t.Errorf("the forged line is not shown untrusted with its file's owner:\n%s", out)
	}
}

// A lock held past the timeout by another runner: the wait is one
// lock-wait event naming the crate, the unprotected build one fail-open
// event with the reason lock-timeout, and both are counted in the metrics
// (cargo_shim_fail_open_total{reason="lock-timeout"}).
func TestLockWaitAndFailOpenAreRecorded(t *testing.T) {
	w := NewWorld(t)
	l := w.builtThenHeld("pmacro-0.1.5")
	defer l.Release()
	// The lock layer reports a wait once it has lasted a second: the
	// timeout is past that, the event threshold (default 1s) at it.
	r := w.Cargo(w.Home(), true, []string{"build", "-q"}, "CARGO_SHIM_LOCK_TIMEOUT=2s", "CI_JOB_ID=555")
	if r.Code != 0 {
		t.Fatalf("timeout must run cargo: %s", r)
	}
	var wait, fail *events.Read
	for _, e := range w.readEvents() {
		switch e.Kind {
		case events.KindLockWait:
			wait = &e
		case events.KindFailOpen:
			fail = &e
		}
	}
	if wait == nil || wait.Crate != "pmacro" || wait.Version != "0.1.5" || wait.Action != "crate" || wait.Seconds < 1 || wait.Job != "gitlab:555" {
		t.Fatalf("lock-wait event: %+v", wait)
	}
	if fail == nil || fail.Action != "lock-timeout" || !strings.Contains(fail.Reason, "pmacro v0.1.5") {
		t.Fatalf("fail-open event: %+v", fail)
	}
	m := w.Admin("metrics").Stdout
	reg := `{registry="` + w.Shared + `"`
	if got := metric(t, m, "cargo_shim_fail_open_total"+reg+`,reason="lock-timeout"}`); got != 1 {
		t.Errorf("fail_open_total{reason=lock-timeout} = %v, want 1\n%s", got, m)
	}
	if got := metric(t, m, "cargo_shim_lock_waits_total"+reg+`}`); got != 1 {
		t.Errorf("lock_waits_total = %v, want 1", got)
	}
}
