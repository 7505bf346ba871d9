package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"

	"github.com/cargo-shim/cargo-shim/shim/store"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
)

// Problem is one thing wrong with one crate instance. The JSON field names
// are a stable interface (docs/admin.md: JSON output).
type Problem struct {
	Crate   string `json:"crate"`
	Version string `json:"version"`
	Regdir  string `json:"regdir"`
	// Kind is "extraction", "tarball" or "checksum".
	Kind string `json:"kind"`
	Path string `json:"path"`
	// Code is Problem as a machine word (docs/admin.md: JSON output).
	Code    string `json:"code"`
	Problem string `json:"problem"`
	// Warning: nothing a build trips over (a truncated tarball kept under
	// its healthy extraction, for --offline builds); verify and repair list
	// it and exit 0 for it.
	Warning bool `json:"warning,omitempty"`
	// Denied: repair was refused permission (this uid cannot write there);
	// running it again as the same uid changes nothing.
	Denied bool `json:"denied,omitempty"`

	instance store.Instance
}

func (p Problem) String() string {
	return fmt.Sprintf("%s v%s: %s (%s)", p.Crate, p.Version, p.Problem, p.Path)
}

// Repairable says whether `cargo-shim repair` can do anything about p: a
// tarball with another checksum may be another registry's, and is kept;
// an extraction that differs from a tarball no trusted checksum names is
// what cargo compiles, and is kept too (the store's trust rule).
func (p Problem) Repairable() bool { return p.Kind != "checksum" && p.Code != "unverified-difference" }

// NeedsAttention: something is left that a build could trip over; a
// truncated tarball kept under its healthy extraction is not.
func (r *RepairReport) NeedsAttention() bool { return needsAttention(r.Left) }

// NeedsAttention: verify found something a build could trip over, the
// one rule both commands' exit status follows.
func (r *VerifyReport) NeedsAttention() bool { return needsAttention(r.Problems) }

func needsAttention(ps []Problem) bool {
	for _, p := range ps {
		if !p.Warning {
			return true
		}
	}
	return false
}

// KeptForOffline: a truncated tarball that repair leaves where it is (its
// extraction is healthy; the store's rule, see Repair).
func (p Problem) KeptForOffline() bool { return p.Warning }

// VerifyReport is `cargo-shim verify --json`.
type VerifyReport struct {
	Registry string `json:"registry"`
	// Mode is the check that ran: "fast", "files" or "deep".
	Mode     string    `json:"mode"`
	Deep     bool      `json:"deep"`
	Checked  int       `json:"checked"`
	Problems []Problem `json:"problems"`
	// Git is the git directory beside the registry, when there is one.
	Git *GitReport `json:"git,omitempty"`
}

// ModeName is a check level's word in reports and flags.
func ModeName(l store.Level) string {
	switch l {
	case store.Fast:
		return "fast"
	case store.Deep:
		return "deep"
	}
	return "files"
}

// Verify checks every target at level: Fast trusts unchanged directory
// stamps (what every drop-in run checks), Files also lstats every file of a
// crate whose recorded state still matches, Deep re-reads every tarball,
// compares its sha256 with the known checksum and every file's bytes.
func Verify(reg store.Registry, targets []store.Instance, level store.Level, progress func(done, total int)) *VerifyReport {
	deep := level == store.Deep
	rep := &VerifyReport{Registry: reg.Root, Mode: ModeName(level), Deep: deep, Checked: len(targets), Problems: []Problem{}}
	var mu sync.Mutex
	done := 0
	// Two workers per core: the admin command's checks wait on the disk
	// more than a warm run's. A read-only registry is still verified: a
	// state that cannot be recorded is no problem of the crate's.
	findings := reg.CheckAll(targets, store.CheckOptions{Level: level, Workers: 2 * runtime.GOMAXPROCS(0), Done: func() {
		if progress != nil {
			mu.Lock()
			done++
			progress(done, len(targets))
			mu.Unlock()
		}
	}})
	for _, f := range findings {
		rep.Problems = append(rep.Problems, problemsOf(reg, f)...)
	}
	return rep
}

func problemsOf(reg store.Registry, f store.Finding) []Problem {
	mk := func(kind, path, code, what string) Problem {
		return Problem{Crate: f.Name, Version: f.Version, Regdir: f.Regdir, Kind: kind, Path: path, Code: code, Problem: what, instance: f.Instance}
	}
	var out []Problem
	tb := reg.Tarball(f.Instance)
	switch {
	case f.TarballCorrupt != nil:
		p := mk("tarball", tb, "truncated", "tarball cannot be read to its end (truncated or corrupt)")
		// Under a healthy extraction cargo never reads it and --offline
		// builds need it: kept, replaced by the next online run.
		p.Warning = f.ExtractionOK
		out = append(out, p)
	case f.TarballUnsafe != nil:
		out = append(out, mk("tarball", tb, "unsafe", f.TarballUnsafe.Error()))
	case f.Mismatch != "":
		out = append(out, mk("checksum", tb, "checksum-mismatch", fmt.Sprintf("tarball sha256 %s, expected %s", f.Mismatch, f.Checksum)))
	}
	if f.Unverified != "" {
		// Reported, never repaired: no trusted checksum names these bytes.
		out = append(out, mk("extraction", f.Path, "unverified-difference", f.Unverified))
	}
	if f.Fault == store.Damaged && f.TarballCorrupt == nil {
		out = append(out, mk("extraction", f.Path, reasonCode(f.Reason), f.Reason))
	}
	return out
}

// reasonCode is the machine word for a check's reason. The check words its
// reasons for people; the few shapes they take are matched here, in one
// place, and a new shape reads "broken" until it is added.
func reasonCode(reason string) string {
	switch {
	case reason == "marker missing":
		return "marker-missing"
	case strings.HasPrefix(reason, "marker is "):
		return "marker-wrong"
	case strings.HasSuffix(reason, " missing"):
		return "file-missing"
	case strings.Contains(reason, " bytes, want "):
		return "wrong-size"
	case strings.HasSuffix(reason, "is not a regular file"), reason == "extraction is not a directory":
		return "wrong-type"
	case strings.Contains(reason, " unreadable: "):
		return "unreadable"
	case strings.HasSuffix(reason, "differs from the tarball"):
		return "content-differs"
	}
	return "broken"
}

// RepairReport is `cargo-shim repair --json`.
type RepairReport struct {
	Registry string    `json:"registry"`
	Checked  int       `json:"checked"`
	Repaired []Fixed   `json:"repaired"`
	Left     []Problem `json:"left"`
	// Git is the git directory beside the registry, when there is one.
	Git *GitReport `json:"git,omitempty"`
}

// Fixed is one repair done.
type Fixed struct {
	Crate   string `json:"crate"`
	Version string `json:"version"`
	Regdir  string `json:"regdir"`
	// Action is a machine word: reextracted, extracted, removed-tarball or
	// moved-aside (store.Act*); Detail says it for people.
	Action string `json:"action"`
	Detail string `json:"detail"`
}

// Repair repairs what Verify finds, each crate under its exclusive lock
// (waiting for builds that use it, up to ctx), and goes on past a crate it
// cannot repair; those errors are gathered in the returned error.
func Repair(ctx context.Context, reg store.Registry, targets []store.Instance, deep bool, waiting func(store.Instance, store.WaitFor), progress func(done, total int)) (*RepairReport, error) {
	// Re-extractions must be as writable by the group as the drop-in's.
	groupshare.ApplyUmask(reg.Root)
	level := store.Files
	if deep {
		level = store.Deep
	}
	found := Verify(reg, targets, level, progress)
	rep := &RepairReport{Registry: reg.Root, Checked: found.Checked, Repaired: []Fixed{}, Left: []Problem{}}
	var errs *multierror.Error
	seen := map[store.Instance]bool{}
	for _, p := range found.Problems {
		i := p.instance
		if seen[i] {
			continue
		}
		seen[i] = true
		if !p.Repairable() {
			// A readable tarball with another checksum may belong to
			// another registry: reported, never removed.
			rep.Left = append(rep.Left, p)
			continue
		}
		// Offline: the admin cannot know that the next cargo can download.
		// A truncated tarball under a healthy extraction is harmless to
		// cargo and needed by --offline, so it is left (and reported) for
		// the drop-in's next online run to replace: the rule is the
		// store's, the same for both commands.
		act, after, err := reg.RepairCrate(ctx, i, store.RepairOptions{Deep: deep, Offline: true, Waiting: func(what store.WaitFor) {
			if waiting != nil {
				waiting(i, what)
			}
		}})
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("cannot repair %s: %w", i, err))
			p.Denied = errors.Is(err, fs.ErrPermission)
			rep.Left = append(rep.Left, p)
			continue
		}
		if act.Unjournaled != nil {
			errs = multierror.Append(errs, fmt.Errorf("repaired %s but could not journal it, so target dirs that compiled it are not rebuilt (cargo clean -p %s does): %w", i, i.Name, act.Unjournaled))
		}
		if act.Kind != "" {
			rep.Repaired = append(rep.Repaired, Fixed{Crate: i.Name, Version: i.Version, Regdir: i.Regdir, Action: act.Kind, Detail: act.Detail})
		}
		rep.Left = append(rep.Left, problemsOf(reg, after)...)
	}
	return rep, errs.ErrorOrNil()
}
