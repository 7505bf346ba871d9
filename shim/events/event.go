// Package events keeps the registry's event log: one JSON line per repair,
// extraction, removal, long lock wait and fail-open, in a bounded rotating
// file per uid, and reads it back bounded, whoever wrote it.
//
// The store emits through Sink (it knows nothing of files or jobs); the
// drop-in and the admin command give it a *Log. Counting warm runs is not
// this package's job: that is a counter in package stats, so that the warm
// path writes no line.
package events

import (
	"os"
	"strings"
	"time"
)

// FormatVersion is the "v" of every line. A reader skips lines of another
// version as garbage rather than misread them.
const FormatVersion = 1

// The kinds of event: a stable interface (JSON, docs/events-metrics.md).
const (
	KindRepair   = "repair"    // a broken crate repaired (or left: Action "left")
	KindExtract  = "extract"   // a cached tarball extracted by cargo-shim
	KindRemove   = "remove"    // gc or the trash removed something
	KindLockWait = "lock-wait" // a lock wait longer than the threshold
	KindFailOpen = "fail-open" // cargo ran without the shim's protection
)

// Event is one line of the log.
type Event struct {
	V       int       `json:"v"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Action  string    `json:"action,omitempty"` // what exactly: reextracted, gc-extraction, trash, ...
	Crate   string    `json:"crate,omitempty"`
	Version string    `json:"version,omitempty"`
	Regdir  string    `json:"regdir,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Seconds float64   `json:"duration_seconds"`
	Bytes   int64     `json:"bytes,omitempty"`
	PID     int       `json:"pid"`
	UID     int       `json:"uid"`
	Host    string    `json:"host,omitempty"`
	Job     string    `json:"job,omitempty"`
	Program string    `json:"program,omitempty"` // "cargo" (the drop-in) or "cargo-shim gc", ...
}

// Sink receives events. A nil *Log is a Sink that drops them.
type Sink interface {
	Emit(Event)
}

// Getenv looks up one variable of the run's environment snapshot.
type Getenv func(string) string

// ciJobs are the CI systems' job variables, in the order tried: the first
// system whose variables are all set names the job.
var ciJobs = []struct {
	prefix string
	vars   []string
}{
	{"github", []string{"GITHUB_RUN_ID", "GITHUB_JOB"}},
	{"gitlab", []string{"CI_JOB_ID"}},
	{"buildkite", []string{"BUILDKITE_JOB_ID"}},
	{"jenkins", []string{"BUILD_TAG"}},
	{"circleci", []string{"CIRCLE_WORKFLOW_JOB_ID"}},
	{"azure", []string{"SYSTEM_JOBID"}},
	{"travis", []string{"TRAVIS_JOB_ID"}},
	{"drone", []string{"DRONE_BUILD_NUMBER", "DRONE_STEP_NUMBER"}},
	{"woodpecker", []string{"CI_PIPELINE_NUMBER", "CI_STEP_NUMBER"}},
}

// JobID is CARGO_SHIM_JOB, else the CI job this process runs in, as
// "system:id" ("github:123456/build", "gitlab:789"), else "".
func JobID(getenv Getenv) string {
	if j := getenv("CARGO_SHIM_JOB"); j != "" {
		return j
	}
	for _, c := range ciJobs {
		vals := make([]string, 0, len(c.vars))
		for _, v := range c.vars {
			if s := getenv(v); s != "" {
				vals = append(vals, s)
			}
		}
		if len(vals) == len(c.vars) {
			return c.prefix + ":" + strings.Join(vals, "/")
		}
	}
	return ""
}

// Base is what every event of this process carries.
func Base(getenv Getenv, program string) Event {
	host, _ := os.Hostname()
	return Event{PID: os.Getpid(), UID: os.Geteuid(), Host: host, Job: JobID(getenv), Program: program}
}
