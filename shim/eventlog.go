package shim

import (
	"errors"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/events"
	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// EventLog is the event log the settings name: the registry's per-uid
// logs, the operator's file, or none ("off": removals are still counted
// for the stats). program is what the events say wrote them ("cargo",
// "cargo-shim gc"). Nothing is opened until an event is emitted: a warm
// run writes none.
func EventLog(cfg Config, getenv Getenv, program string, log *Logger) *events.Log {
	var l *events.Log
	switch {
	case strings.EqualFold(cfg.EventLog, "off"):
		return events.Discard()
	case cfg.EventLog != "":
		l = events.ToFile(cfg.EventLog, events.Getenv(getenv), program)
	default:
		l = events.ForRegistry(cfg.Registry, events.Getenv(getenv), program)
	}
	l.Failed = func(err error) { log.Debug("%v", err) }
	return l
}

// stageError says at which step a run failed, for the fail-open event's
// reason and the cargo_shim_fail_open_total{reason} series.
type stageError struct {
	reason string
	err    error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// stage marks err (if any) as a failure of the step named reason.
func stage(reason string, err error) error {
	if err == nil {
		return nil
	}
	var s *stageError
	if errors.As(err, &s) {
		return err
	}
	return &stageError{reason, err}
}

// failReason is the reason word of a Prepare error.
func failReason(err error) string {
	var s *stageError
	switch {
	case errors.As(err, new(lockTimeout)):
		return "lock-timeout"
	case errors.As(err, &s):
		return s.reason
	}
	return "other"
}

// failOpen counts and records one warning after which cargo runs without
// the shim's full protection.
func (r *Run) failOpen(reason string, err error) {
	r.rec.Fail(reason)
	r.events.Emit(events.Event{Kind: events.KindFailOpen, Action: reason, Reason: err.Error()})
}

// lockWaited records a wait of d when it reached the event threshold.
func (r *Run) lockWaited(w *lockWait, d time.Duration) {
	if d < r.Cfg.EventLockWait {
		return
	}
	e := events.Event{Kind: events.KindLockWait, Seconds: d.Seconds()}
	if p := w.on.Load(); p != nil {
		e.Action, e.Reason = p.what, p.why
		e.Crate, e.Version, e.Regdir = p.i.Name, p.i.Version, p.i.Regdir
	}
	r.events.Emit(e)
}

// waitOn is what a lock wait waited for.
type waitOn struct {
	what, why string // "crate", "package-cache", "gc"; a few words
	i         store.Instance
}

// countRun adds this run to the stats: its record, or, for a warm run
// (planned, nothing done), one tick of the warm counter.
func (r *Run) countRun() {
	for k, n := range r.events.Removals() {
		if r.rec.Removals == nil {
			r.rec.Removals = map[string]int{}
		}
		r.rec.Removals[k] += n
	}
	if !r.rec.Empty() {
		r.saveStats()
		return
	}
	if r.plan == nil || r.Nested {
		// No plan checked, or a cargo under another shim's cargo: not a
		// run of its own.
		return
	}
	d, err := r.Reg.FS()
	if err == nil {
		err = stats.CountWarm(d, time.Now())
	}
	if err != nil {
		r.Log.Debug("cannot count the warm run: %v", err)
	}
}

func waitWord(w store.WaitFor) string {
	if w == store.WaitCrate {
		return "crate"
	}
	return "package-cache"
}
