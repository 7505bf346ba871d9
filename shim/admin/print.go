package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// WriteJSON writes v indented, one document per command.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// PrintVerify writes one line per problem, then a summary that says what
// to run next. next is the repair command line for these targets.
func PrintVerify(out *shim.Logger, rep *VerifyReport, next string) {
	printProblems(out, rep.Problems)
	n := len(rep.Problems)
	var repairable, foreign, kept int
	for _, p := range rep.Problems {
		switch {
		case p.Warning:
			kept++
		case p.Repairable():
			repairable++
		default:
			foreign++
		}
	}
	// Green says all is well, yellow that only warnings are left (exit
	// status 0): a summary of problems is red.
	style := shim.Done
	switch {
	case n > kept:
		style = shim.Failure
	case kept > 0:
		style = shim.Warning
	}
	out.Line(style, "Verified", fmt.Sprintf("%s in %s (%s check): %s", plural(rep.Checked, "crate"), rep.Registry, rep.Mode, problemCount(n)))
	if repairable > 0 {
		out.Help("run `%s` to repair them", next)
	}
	if foreign > 0 {
		out.Help("a tarball with another checksum may be another registry's: check the Cargo.lock; `cargo-shim repair` keeps it")
	}
	if kept > 0 {
		out.Help(keptHelp)
	}
}

// keptHelp is the one rule for a truncated tarball under a healthy
// extraction, as both verify and repair say it.
const keptHelp = "a truncated tarball under a healthy extraction is kept (a warning, exit status 0): cargo never reads it and `--offline` builds need it; the next online build through the shim downloads it again"

func printProblems(out *shim.Logger, ps []Problem) {
	for _, p := range ps {
		switch {
		case p.Warning:
			out.Line(shim.Warning, "Kept", p.String())
		case p.Kind == "checksum":
			out.Line(shim.Warning, "Mismatch", p.String())
		case p.Kind == "tarball":
			out.Line(shim.Failure, "Corrupt", p.String())
		default:
			out.Line(shim.Failure, "Broken", p.String())
		}
	}
}

// pastVerbs are the admin command's verbs for what a repair did.
var pastVerbs = map[string]string{
	store.ActReextracted: "Repaired", store.ActExtracted: "Extracted",
	store.ActRemovedTarball: "Removed", store.ActMovedAside: "Removed",
}

// PrintRepair says what was repaired and what is left.
func PrintRepair(out *shim.Logger, rep *RepairReport) {
	for _, f := range rep.Repaired {
		out.Line(shim.Done, pastVerbs[f.Action], f.Detail)
	}
	printProblems(out, rep.Left)
	style := shim.Done
	if rep.NeedsAttention() {
		style = shim.Warning
	}
	out.Line(style, "Checked", fmt.Sprintf("%s in %s: %d repaired, %s left", plural(rep.Checked, "crate"), rep.Registry, len(rep.Repaired), problemCount(len(rep.Left))))
	var retry, kept, foreign int
	for _, p := range rep.Left {
		switch {
		case p.Denied:
			// the cause and the fix follow the errors
		case !p.Repairable():
			foreign++
		case p.KeptForOffline():
			kept++
		default:
			retry++
		}
	}
	if retry > 0 {
		out.Help("run `cargo-shim repair` again once the builds using these crates finish; the errors below say why each was left")
	}
	if kept > 0 {
		out.Help(keptHelp)
	}
	if foreign > 0 {
		out.Help("a tarball with another checksum may be another registry's: check the Cargo.lock; `cargo-shim repair` keeps it")
	}
}

// PrintGC lists removals and busy crates and the bytes freed, each byte
// counted once.
func PrintGC(out *shim.Logger, rep *GCReport) {
	verb := "Removed"
	if rep.DryRun {
		verb = "Removable"
	}
	for _, e := range rep.Removed {
		what := fmt.Sprintf("%s of %s v%s", e.What, e.Crate, e.Version)
		if e.What == "temp" {
			what = fmt.Sprintf("leftover %s of %s v%s", e.Path, e.Crate, e.Version)
		}
		out.Line(shim.Done, verb, fmt.Sprintf("%s (%s, last used %s)", what, human(e.Bytes), ago(e.LastUsed)))
	}
	for _, e := range rep.Busy {
		out.Line(shim.Warning, "Kept", fmt.Sprintf("%s v%s: in use by a running build", e.Crate, e.Version))
	}
	if rep.ColdBuild {
		out.Line(shim.Warning, "Kept", "every crate: a build is downloading into a registry with no index yet (run gc again when it is done)")
	}
	msg := fmt.Sprintf("%s from %s", human(rep.TotalFreedBytes), plural(len(rep.Removed), "removal"))
	if rep.TrashFreedBytes > 0 {
		msg += fmt.Sprintf(" (%s of it trash of earlier repairs)", human(rep.TrashFreedBytes))
	}
	if len(rep.Busy) > 0 {
		msg += fmt.Sprintf(", %s kept because in use", plural(len(rep.Busy), "crate"))
	}
	if rep.TrashKeptBytes > 0 {
		msg += fmt.Sprintf(", %s of trash kept for builds still using it", human(rep.TrashKeptBytes))
	}
	if n := rep.LockFiles + rep.StateRecords + rep.PlanRecords; n > 0 {
		msg += fmt.Sprintf("; %s, %s of crates no longer in the registry and %s", plural(rep.LockFiles, "lock file"), plural(rep.StateRecords, "state record"), plural(rep.PlanRecords, "unused or outdated plan record"))
	}
	if rep.DryRun {
		out.Line(shim.Done, "Summary", "would free "+msg)
		out.Warn("no files deleted due to --dry-run")
		return
	}
	out.Line(shim.Done, "Freed", msg)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func problemCount(n int) string {
	if n == 0 {
		return "no problems"
	}
	return plural(n, "problem")
}

// PrintStatus writes the status as "key: value" lines, then a warning and
// a help line for each thing that needs attention.
func PrintStatus(out *shim.Logger, st *StatusReport) {
	if out.Mode != shim.LogQuiet {
		printStatusLines(out, st)
	}
	for _, a := range st.Attention {
		out.Warn("%s", a.Detail)
		out.Help("%s", a.Help)
	}
}

func printStatusLines(out *shim.Logger, st *StatusReport) {
	w := out.W
	shimNote := "no: the real cargo, cargo-shim is not in front of it"
	if st.PathCargoIsShim {
		shimNote = "yes"
	}
	shim.Fprintf(w, "cargo-shim %s\n", shim.LongVersion())
	shim.Fprintf(w, "cargo on PATH:      %s (is the shim: %s)\n", st.PathCargo, shimNote)
	shim.Fprintf(w, "real cargo:         %s\n", st.RealCargo)
	if st.RegistryTarget != st.Registry {
		shim.Fprintf(w, "registry:           %s (through %s)\n", st.RegistryTarget, st.Registry)
	} else {
		shim.Fprintf(w, "registry:           %s\n", st.Registry)
	}
	shim.Fprintf(w, "filesystem:         %s (%s)\n", st.Filesystem, st.MountOptions)
	shim.Fprintf(w, "locks reach hosts:  %v: %s\n", st.LocksReachOtherHosts, st.LocksNote)
	shim.Fprintf(w, "flock measured:     %s\n", st.LockProbe)
	if st.EvictionBound != "" {
		shim.Fprintf(w, "a host that died:   %s\n", st.EvictionBound)
	}
	shim.Fprintf(w, "cargo's own locks:  %s\n", st.CargoLocks)
	shim.Fprintf(w, "cold starts:        %s\n", st.ColdStarts)
	if st.Formats != "" {
		shim.Fprintf(w, "formats:            %s\n", st.Formats)
	}
	if st.LockModes != nil {
		shim.Fprintf(w, "locks measured:     %s\n", st.LockModes.Summary())
	}
	shim.Fprintf(w, "crates:             %d extracted, %d tarballs, %d lock files\n", st.Extractions, st.Tarballs, st.LockFiles)
	shim.Fprintf(w, "cargo's lock:       shared across homes for this CARGO_HOME: %v\n", st.CargoLockShared)
	if st.CargoLockRoot != "" {
		shim.Fprintf(w, "                    not for root runs: %s\n", st.CargoLockRoot)
	}
	shim.Fprintf(w, "cargo's auto-GC:    %s\n", st.CargoAutoGC)
	printGroupStatus(w, st.GroupStatus, out.Mode == shim.LogVerbose || out.Mode == shim.LogDebug)
	shim.Fprintf(w, "locked now:         %d\n", len(st.Locked))
	for _, h := range st.Locked {
		shim.Fprintf(w, "  %s v%s (%s) %s by pid %d (%s)", h.Crate, h.Version, h.Regdir, h.Mode, h.Pid, h.Command)
		if h.ForPid != 0 && h.ForPid != h.Pid {
			shim.Fprintf(w, " for pid %d (%s)", h.ForPid, h.ForCommand)
		}
		fmt.Fprintln(w)
	}
	if st.Git != nil {
		printGitStatus(w, st.Git)
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d/time.Hour))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes ago", int(d/time.Minute))
	}
	return "just now"
}
