package admin

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/gitstore"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// GitReport is the git part of `cargo-shim verify` and `repair` (JSON field
// "git", absent when there is no git directory).
type GitReport struct {
	Dir      string       `json:"dir"`
	Checked  int          `json:"checked"`
	Repaired []string     `json:"repaired,omitempty"`
	Problems []GitProblem `json:"problems"`
}

// GitProblem is one checkout a build would trip over, or could not be
// identified.
type GitProblem struct {
	Source string `json:"source"` // <name>-<hash>, cargo's directory name
	Commit string `json:"commit"`
	Path   string `json:"path"`
	// Code: "missing" (no usable checkout), "broken" (files differ from
	// the commit), "needs-fetch" (the db lacks the commit), "damaged-db"
	// (the db lacks it because git cannot read it; Path is the db),
	// "unknown" (neither the db nor the checkout names its commit).
	Code    string `json:"code"`
	Problem string `json:"problem"`
}

func (p GitProblem) String() string {
	return fmt.Sprintf("git %s %s: %s", p.Source, shortID(p.Commit), p.Problem)
}

func shortID(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

// GitDirOf is the git directory beside a registry: both are in one
// CARGO_HOME (or one shared volume). "" when there is none.
func GitDirOf(reg store.Registry) string {
	d := filepath.Join(filepath.Dir(reg.Root), "git")
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		return ""
	}
	return d
}

// gitTargets is what the Cargo.locks name, else every checkout present.
func gitTargets(g gitstore.Store, lockfiles []string) ([]gitstore.Source, []GitProblem, error) {
	if len(lockfiles) == 0 {
		srcs, unknown := g.Discover()
		var ps []GitProblem
		for _, co := range unknown {
			ps = append(ps, GitProblem{Source: filepath.Base(filepath.Dir(co)), Path: co, Code: "unknown", Problem: "neither its db nor its HEAD names the commit it is for"})
		}
		return srcs, ps, nil
	}
	var pkgs [][2]string
	for _, lf := range lockfiles {
		data, err := os.ReadFile(lf)
		if err != nil {
			return nil, nil, err
		}
		p, err := store.GitPackages(data, lf)
		if err != nil {
			return nil, nil, err
		}
		pkgs = append(pkgs, p...)
	}
	srcs, _ := gitstore.Sources(pkgs)
	return srcs, nil, nil
}

func gitProblem(f gitstore.Finding) GitProblem {
	code := map[gitstore.Verdict]string{gitstore.Missing: "missing", gitstore.Broken: "broken", gitstore.NeedsFetch: "needs-fetch"}[f.Verdict]
	return GitProblem{Source: f.Source.Ident, Commit: f.Source.Commit, Path: f.Checkout, Code: code, Problem: f.Problem}
}

// VerifyGit checks the checkouts in dir at level; it changes nothing.
func VerifyGit(dir string, lockfiles []string, level store.Level) (*GitReport, error) {
	g := gitstore.Store{Root: dir}
	srcs, ps, err := gitTargets(g, lockfiles)
	if err != nil {
		return nil, err
	}
	rep := &GitReport{Dir: dir, Checked: len(srcs), Problems: append([]GitProblem{}, ps...)}
	ctx := context.Background()
	for _, f := range g.CheckAll(ctx, srcs, gitstore.Level(level)) {
		if f.Verdict != gitstore.Healthy {
			rep.Problems = append(rep.Problems, damagedDB(ctx, g, gitProblem(f), f))
		}
	}
	return rep, nil
}

// damagedDB reports a db that lacks the commit because it is damaged
// (code "damaged-db") rather than merely not fetched yet.
func damagedDB(ctx context.Context, g gitstore.Store, p GitProblem, f gitstore.Finding) GitProblem {
	if f.Verdict != gitstore.NeedsFetch {
		return p
	}
	if why := g.DBDamage(ctx, f.Source); why != "" {
		p.Code, p.Path, p.Problem = "damaged-db", g.DB(f.Source), why
	}
	return p
}

// rebuildDB rebuilds f's damaged db from its URL (network), under the db's
// exclusive lock; then the checkout is looked at again. A source whose URL
// is not known (no --lockfile) is left.
func rebuildDB(ctx context.Context, g gitstore.Store, f gitstore.Finding, opt gitstore.Options) (gitstore.Action, error) {
	if g.DBDamage(ctx, f.Source) == "" {
		return gitstore.Action{Left: true, Detail: f.Problem + "; cargo fetches it (online)"}, nil
	}
	if f.Source.URL == "" {
		return gitstore.Action{Left: true, Detail: g.DBDamage(ctx, f.Source) + "; its URL is known with --lockfile (or a build online rebuilds it)"}, nil
	}
	return g.RebuildDBLocked(ctx, f.Source, opt)
}

// RepairGit rebuilds, each under its exclusive lock, the checkouts a full
// check finds missing or broken, from their dbs (no network). A db that
// lacks the commit is left for the next online build, unless it is
// damaged and its URL known (--lockfile): then it is rebuilt from the URL
// (network) under its exclusive lock, and the checkout after it.
func RepairGit(ctx context.Context, dir string, lockfiles []string, waiting func(path string)) (*GitReport, error) {
	g := gitstore.Store{Root: dir}
	if err := g.Open(); err != nil {
		return nil, err
	}
	srcs, ps, err := gitTargets(g, lockfiles)
	if err != nil {
		return nil, err
	}
	rep := &GitReport{Dir: dir, Checked: len(srcs), Problems: append([]GitProblem{}, ps...)}
	var errs *multierror.Error
	for _, f := range g.CheckAll(ctx, srcs, gitstore.Full) {
		switch f.Verdict {
		case gitstore.Healthy:
			continue
		case gitstore.NeedsFetch:
			act, err := rebuildDB(ctx, g, f, gitstore.Options{Waiting: waiting})
			if err != nil || act.Left {
				p := damagedDB(ctx, g, gitProblem(f), f)
				if act.Left {
					p.Problem = act.Detail
				}
				rep.Problems = append(rep.Problems, p)
				errs = multierror.Append(errs, err)
				continue
			}
			if act.Verb != "" {
				rep.Repaired = append(rep.Repaired, act.Detail)
			}
		}
		act, err := g.Repair(ctx, f.Source, gitstore.Options{Waiting: waiting})
		switch {
		case err != nil:
			errs = multierror.Append(errs, fmt.Errorf("git %s: %w", f.Source, err))
			rep.Problems = append(rep.Problems, gitProblem(f))
		case act.Left:
			p := gitProblem(f)
			p.Problem = act.Detail
			rep.Problems = append(rep.Problems, p)
		case act.Verb != "":
			rep.Repaired = append(rep.Repaired, act.Detail)
		}
	}
	return rep, errs.ErrorOrNil()
}

// PrintGit prints a git report after the registry's.
func PrintGit(out *shim.Logger, rep *GitReport, verb string) {
	for _, r := range rep.Repaired {
		out.Line(shim.Done, "Rebuilt", r)
	}
	for _, p := range rep.Problems {
		out.Line(shim.Failure, "Broken", p.String())
	}
	out.Line(shim.Done, verb, fmt.Sprintf("%s in %s: %s", plural(rep.Checked, "git checkout"), rep.Dir, problemCount(len(rep.Problems))))
}

// GitStatus is the git part of `cargo-shim status` (JSON field "git",
// absent when there is no git directory beside the registry).
type GitStatus struct {
	Dir       string          `json:"dir"`
	DBs       int             `json:"dbs"`
	Checkouts int             `json:"checkouts"`
	LockFiles int             `json:"lock_files"`
	Locked    []GitLockHolder `json:"locked"`
}

// GitLockHolder is one lock held now on a git checkout's or db's lock file.
type GitLockHolder struct {
	Lock    string `json:"lock"` // relative to git/.cargo-shim/locks
	Mode    string `json:"mode"`
	Pid     int    `json:"pid"`
	Command string `json:"command"`
	ForPid  int    `json:"for_pid,omitempty"`
}

// gitStatus counts what dir holds and lists the locks held on it now.
func gitStatus(dir string) *GitStatus {
	g := gitstore.Store{Root: dir}
	st := &GitStatus{Dir: dir, Locked: []GitLockHolder{}}
	dbs, _ := os.ReadDir(filepath.Join(dir, "db"))
	st.DBs = len(dbs)
	srcs, unknown := g.Discover()
	st.Checkouts = len(srcs) + len(unknown)
	type key struct {
		maj, min uint32
		ino      uint64
	}
	files := map[key]string{}
	locks := filepath.Join(g.ShimDir(), "locks")
	_ = filepath.WalkDir(locks, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".lock" {
			return nil
		}
		var s unix.Stat_t
		if unix.Lstat(p, &s) == nil {
			rel, _ := filepath.Rel(locks, p)
			files[key{unix.Major(s.Dev), unix.Minor(s.Dev), s.Ino}] = rel
			st.LockFiles++
		}
		return nil
	})
	for _, l := range procFlocks() {
		if rel, ok := files[key{l.maj, l.min, l.ino}]; ok {
			h := GitLockHolder{Lock: rel, Mode: l.mode, Pid: l.pid, Command: cmdline(l.pid)}
			if h.Command == "cargo-shim-holder" {
				h.ForPid = parentOf(l.pid)
			}
			st.Locked = append(st.Locked, h)
		}
	}
	return st
}

// printGitStatus is status's git lines.
func printGitStatus(w io.Writer, st *GitStatus) {
	shim.Fprintf(w, "git:                %s: %d dbs, %d checkouts, %d lock files, %d locked now\n", st.Dir, st.DBs, st.Checkouts, st.LockFiles, len(st.Locked))
	for _, h := range st.Locked {
		shim.Fprintf(w, "  git %s %s by pid %d (%s)", h.Lock, h.Mode, h.Pid, h.Command)
		if h.ForPid != 0 {
			shim.Fprintf(w, " for pid %d", h.ForPid)
		}
		fmt.Fprintln(w)
	}
}

// GitGCReport is the git part of `cargo-shim gc` (JSON field "git").
type GitGCReport struct {
	Dir        string     `json:"dir"`
	Removed    []GitGCRow `json:"removed"`
	Busy       []GitGCRow `json:"busy"`
	DBsRemoved []GitGCRow `json:"dbs_removed"`
	DBsBusy    []GitGCRow `json:"dbs_busy"`
	DBsKept    string     `json:"dbs_kept,omitempty"` // why no db was looked at
	Leftovers  int        `json:"leftovers_removed"`
	Freed      int64      `json:"freed_bytes"`
}

// GitGCRow is one checkout or db removed (or removable) or kept because in
// use. A db's row has no commit.
type GitGCRow struct {
	Source   string    `json:"source"`
	Commit   string    `json:"commit,omitempty"`
	Path     string    `json:"path"`
	LastUsed time.Time `json:"last_used"`
	Bytes    int64     `json:"bytes"`
}

// GitGC removes the checkouts in dir no build has used for o.MaxAge, each
// under its exclusive lock taken without waiting (in use: kept), and the
// leftovers of killed repairs. A db is to a checkout what a tarball is to
// an extraction (what it comes back from without network), so dbs go only
// when tarballs do (o.Tarballs, o.CrateMaxAge), and only once no checkout
// of theirs is left.
func GitGC(dir string, o GCOptions, now time.Time) (*GitGCReport, error) {
	g := gitstore.Store{Root: dir}
	if err := g.Open(); err != nil {
		return nil, err
	}
	srcs, unknown := g.Discover()
	rep := &GitGCReport{Dir: dir, Removed: []GitGCRow{}, Busy: []GitGCRow{}, DBsRemoved: []GitGCRow{}, DBsBusy: []GitGCRow{}}
	var errs *multierror.Error
	gone := map[string]int{} // a dry run's checkouts, still there
	var kept []gitstore.Source
	for _, s := range srcs {
		rm, err := g.Collect(s, now.Add(-o.MaxAge), o.DryRun)
		row := GitGCRow{Source: s.Ident, Commit: s.Commit, Path: rm.Path, LastUsed: rm.LastUsed, Bytes: rm.Bytes}
		errs = rep.add(row, rm, err, &rep.Removed, &rep.Busy, errs)
		switch {
		case rm.Removed && o.DryRun:
			gone[s.Ident]++
		case !rm.Removed:
			kept = append(kept, s)
		}
	}
	if o.Tarballs {
		errs = rep.collectDBs(g, kept, unknown, gone, now.Add(-o.CrateMaxAge), o.DryRun, errs)
	}
	n, b := g.Leftovers(now, o.DryRun)
	rep.Leftovers, rep.Freed = n, rep.Freed+b
	return rep, errs.ErrorOrNil()
}

// collectDBs removes the dbs no checkout is left of and none of the kept
// checkouts took submodules from. One checkout left whose submodules name
// a db gc cannot identify keeps them all (reported in DBsKept).
func (rep *GitGCReport) collectDBs(g gitstore.Store, kept []gitstore.Source, unknown []string, gone map[string]int, cutoff time.Time, dry bool, errs *multierror.Error) *multierror.Error {
	for _, co := range unknown {
		if _, err := os.Lstat(filepath.Join(co, ".gitmodules")); err == nil {
			rep.DBsKept = fmt.Sprintf("%s has submodules and names no commit its db holds", co)
			return errs
		}
	}
	needed := map[string]bool{}
	for _, s := range kept {
		idents, unsure := g.SubmoduleDBs(context.Background(), s)
		if unsure {
			rep.DBsKept = fmt.Sprintf("the submodules of %s name dbs gc cannot identify", g.Checkout(s))
			return errs
		}
		for _, id := range idents {
			needed[id] = true
		}
	}
	for _, ident := range g.DBIdents() {
		if needed[ident] {
			continue
		}
		rm, err := g.CollectDB(ident, g.CheckoutsLeft(ident)-gone[ident], cutoff, dry)
		row := GitGCRow{Source: ident, Path: rm.Path, LastUsed: rm.LastUsed, Bytes: rm.Bytes}
		errs = rep.add(row, rm, err, &rep.DBsRemoved, &rep.DBsBusy, errs)
	}
	return errs
}

// add files one gc decision under removed or busy, or its error.
func (rep *GitGCReport) add(row GitGCRow, rm gitstore.Removal, err error, removed, busy *[]GitGCRow, errs *multierror.Error) *multierror.Error {
	switch {
	case err != nil:
		return multierror.Append(errs, fmt.Errorf("git %s: %w", rm.Path, err))
	case rm.Busy:
		*busy = append(*busy, row)
	case rm.Removed:
		*removed = append(*removed, row)
		rep.Freed += rm.Bytes
	}
	return errs
}

// PrintGitGC prints a git gc report after the registry's.
func PrintGitGC(out *shim.Logger, rep *GitGCReport, dry bool) {
	verb := "Removed"
	if dry {
		verb = "Removable"
	}
	for _, r := range rep.Removed {
		out.Line(shim.Done, verb, fmt.Sprintf("git checkout %s (%s, last used %s)", r.Path, human(r.Bytes), ago(r.LastUsed)))
	}
	for _, r := range rep.DBsRemoved {
		out.Line(shim.Done, verb, fmt.Sprintf("git db %s (%s, last used %s; no checkout of it left)", r.Path, human(r.Bytes), ago(r.LastUsed)))
	}
	for _, r := range rep.Busy {
		out.Line(shim.Warning, "Kept", fmt.Sprintf("git checkout %s: in use by a running build", r.Path))
	}
	for _, r := range rep.DBsBusy {
		out.Line(shim.Warning, "Kept", fmt.Sprintf("git db %s: in use by a running build or fetch", r.Path))
	}
	if rep.DBsKept != "" {
		out.Line(shim.Warning, "Kept", "every git db: "+rep.DBsKept)
	}
	what := plural(len(rep.Removed), "git checkout")
	if len(rep.DBsRemoved) > 0 {
		what += " and " + plural(len(rep.DBsRemoved), "git db")
	}
	out.Line(shim.Done, "Collected", fmt.Sprintf("%s from %s in %s, %d leftovers of killed repairs", human(rep.Freed), what, rep.Dir, rep.Leftovers))
}
