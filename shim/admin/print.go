package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cargo-shim/cargo-shim/shim"
)

// WriteJSON writes v indented, one document per command.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// PrintVerify writes problems in cargo's style, then a summary line.
func PrintVerify(log *shim.Logger, w io.Writer, rep *VerifyReport) {
	for _, p := range rep.Problems {
		log.Status("Problem", p.String())
	}
	shim.Fprintf(w, "verified %d crates in %s: %d problems\n", rep.Checked, rep.Registry, len(rep.Problems))
}

// PrintRepair says what was repaired and what is left.
func PrintRepair(log *shim.Logger, w io.Writer, rep *RepairReport) {
	for _, f := range rep.Repaired {
		log.Status("Repaired", fmt.Sprintf("%s (%s)", f.Action, f.Regdir))
	}
	for _, p := range rep.Left {
		log.Status("Left", p.String())
	}
	shim.Fprintf(w, "checked %d crates in %s: %d repaired, %d problems left\n", rep.Checked, rep.Registry, len(rep.Repaired), len(rep.Left))
}

// PrintGC lists removals and busy crates and the bytes freed.
func PrintGC(log *shim.Logger, w io.Writer, rep *GCReport) {
	verb := "Removed"
	if rep.DryRun {
		verb = "Would remove"
	}
	for _, e := range rep.Removed {
		log.Status(verb, fmt.Sprintf("%s of %s v%s (%s, %s, last used %s)", e.What, e.Crate, e.Version, e.Regdir, human(e.Bytes), ago(e.LastUsed)))
	}
	for _, e := range rep.Busy {
		log.Status("Kept", fmt.Sprintf("%s v%s (%s): in use by a running build", e.Crate, e.Version, e.Regdir))
	}
	if rep.ColdBuild {
		log.Status("Kept", "every crate: a build is downloading into a registry with no index yet (run gc again when it is done)")
	}
	shim.Fprintf(w, "%s %s from %d crates (%d kept because in use), %s from the trash; %d lock files and %d state records of crates no longer in the registry, %d unused or outdated plan records\n",
		map[bool]string{true: "would free", false: "freed"}[rep.DryRun], human(rep.FreedBytes), len(rep.Removed), len(rep.Busy), human(rep.TrashFreedBytes),
		rep.LockFiles, rep.StateRecords, rep.PlanRecords)
}

// PrintStatus writes the status as "key: value" lines.
func PrintStatus(w io.Writer, st *StatusReport) {
	shimNote := "no: the real cargo, cargo-shim is not in front of it"
	if st.PathCargoIsShim {
		shimNote = "yes"
	}
	shim.Fprintf(w, "cargo-shim %s\n", st.Version)
	shim.Fprintf(w, "cargo on PATH:      %s (is the shim: %s)\n", st.PathCargo, shimNote)
	shim.Fprintf(w, "real cargo:         %s\n", st.RealCargo)
	shim.Fprintf(w, "registry:           %s\n", st.Registry)
	shim.Fprintf(w, "filesystem:         %s (%s)\n", st.Filesystem, st.MountOptions)
	shim.Fprintf(w, "locks reach hosts:  %v: %s\n", st.LocksReachOtherHosts, st.LocksNote)
	shim.Fprintf(w, "cargo's own locks:  %s\n", st.CargoLocks)
	shim.Fprintf(w, "cold starts:        %s\n", st.ColdStarts)
	shim.Fprintf(w, "crates:             %d extracted, %d tarballs, %d lock files\n", st.Extractions, st.Tarballs, st.LockFiles)
	shim.Fprintf(w, "cargo's lock:       shared across homes for this CARGO_HOME: %v\n", st.CargoLockShared)
	shim.Fprintf(w, "cargo's auto-GC:    %s\n", st.CargoAutoGC)
	printGroupStatus(w, st.GroupStatus)
	shim.Fprintf(w, "locked now:         %d\n", len(st.Locked))
	for _, h := range st.Locked {
		shim.Fprintf(w, "  %s v%s (%s) %s by pid %d (%s)", h.Crate, h.Version, h.Regdir, h.Mode, h.Pid, h.Command)
		if h.ForPid != 0 {
			shim.Fprintf(w, " for pid %d (%s)", h.ForPid, h.ForCommand)
		}
		fmt.Fprintln(w)
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
	return time.Since(t).Round(time.Second).String() + " ago"
}
