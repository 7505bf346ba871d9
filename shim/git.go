package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/gitstore"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// gitSources is the git part of the plan: Cargo.lock's git sources. None
// without a Cargo.lock, or for `cargo install` (whose --git source is
// planned by installGitSources).
func (r *Run) gitSources() []gitstore.Source {
	if r.Cmd.Sub == "install" {
		return nil
	}
	lockPath, data, err := r.cargoLock(r.Cmd.ManifestPath)
	if lockPath == "" || err != nil || !bytes.Contains(data, []byte(`"git+`)) {
		return nil
	}
	pkgs, err := store.GitPackages(data, lockPath)
	if err != nil {
		r.Log.Debug("git sources: %v", err)
		return nil
	}
	srcs, bad := gitstore.Sources(pkgs)
	for _, b := range bad {
		r.Log.Warn("%s: git source of %s is not one cargo-shim can name; left to cargo", lockPath, b)
	}
	r.gitLock = lockPath
	return srcs
}

// prepareGit is the run's steps for git sources, before the registry's:
// pin every planned source (checkout and db locks, shared) before looking
// at any, then, under those pins, have cargo fetch what no db holds (once
// across runners), check every checkout, rebuild the missing and broken
// ones from their db. The pins stay held here until the holder has taken
// the same locks (see gitstore.Pins): a lock-honouring reaper never finds
// a gap between the steps. It returns the lock paths that pin the
// checkouts and dbs for the build. Nothing here stops the run: a failure
// is one warning and cargo does as it would.
func (r *Run) prepareGit() []string {
	srcs := r.gitSources()
	install := r.Cmd.Sub == "install" && parseInstallArgs(r.Cmd.SubArgs).git
	if len(srcs) == 0 && !install {
		return nil
	}
	g, ok := r.openGit()
	if !ok {
		return nil
	}
	ctx, cancel := r.lockContext()
	defer cancel()
	opt := gitstore.Options{NoWait: r.Nested, Waiting: func(p string) {
		r.Log.Status("Blocking", "waiting for lock on git dependency "+gitNameOf(srcs, g, p)+" (in use by another runner)")
	}, Report: r.reportGit}
	if install {
		if srcs = r.installGitSources(ctx, g, opt); len(srcs) == 0 {
			return nil
		}
	}
	pins, err := g.Pin(ctx, srcs, opt.Waiting)
	if err != nil {
		r.Log.Warn("pinning git dependencies: %v; they are checked and pinned with the build's locks", err)
	}
	r.gitPins = pins
	findings := g.CheckAll(ctx, srcs, gitstore.Level(r.Cfg.Verify))
	fast := 0
	for _, f := range findings {
		if f.Fast {
			fast++
		}
	}
	r.Log.Debug("git: %d sources checked, %d by their stamp record (%s)", len(srcs), fast, time.Since(r.start))
	r.gitUnfetched = map[gitstore.Source]bool{}
	for _, f := range r.fixGit(ctx, g, srcs, findings, opt) {
		if f.Verdict == gitstore.NeedsFetch {
			r.gitUnfetched[f.Source] = true
		}
	}
	r.git, r.gitSrcs = g, srcs
	return g.LockPaths(srcs)
}

// openGit is the shared git directory, declared to the lock package; not
// ok (said in a warning) when git dependencies cannot be checked here.
func (r *Run) openGit() (gitstore.Store, bool) {
	g := gitstore.Store{Root: filepath.Join(r.Cfg.CargoHome, "git")}
	if _, err := exec.LookPath("git"); err != nil {
		r.Log.Warn("git dependencies are not checked: the git command is not on PATH (%v)", err)
		return g, false
	}
	if err := os.MkdirAll(g.Root, 0o755); err != nil {
		r.Log.Warn("git sources: %v; left to cargo", err)
		return g, false
	}
	if err := g.Open(); err != nil {
		r.Log.Warn("git sources: %v; left to cargo", err)
		return g, false
	}
	return g, true
}

// unpinnedFor runs fix, which takes paths exclusively, with those paths
// unpinned and every other pin held; fix hands its locks back downgraded
// (Options.Keep), so no lock-honouring reaper finds a gap between the fix
// and the pin. It never waits while it holds a pin (gitstore.Pins'
// deadlock rule): fix first takes its locks without waiting; when one is
// busy, fixOnceSettled takes over. The caller looks at the sources again
// after, under the pins.
func (r *Run) unpinnedFor(ctx context.Context, paths []string, opt gitstore.Options, needed func() bool, fix func(gitstore.Options) error) error {
	p := r.gitPins
	if p == nil {
		return fix(opt)
	}
	o := opt
	o.Keep, o.NoWait = p.Keep, true
	p.Unpin(paths)
	err := fix(o)
	if errors.Is(err, gitstore.ErrInUse) && !opt.NoWait {
		err = r.fixOnceSettled(ctx, paths[0], opt, needed, func(slice time.Duration) error {
			o.NoWait, o.Slice = false, slice
			return fix(o)
		})
	}
	if perr := p.Repin(ctx, opt.Waiting); perr != nil && err == nil {
		err = perr
	}
	return err
}

// fixOnceSettled is the busy case of unpinnedFor. The exclusive lock is
// usually busy because another runner is fixing the same source, or has
// fixed it and builds with it pinned (its fix's locks kept): waiting for
// the lock would wait for that whole build. So the exclusive lock is
// waited for a short slice at a time, holding no lock; before each slice
// the pins are taken again (a shared wait is blocked only by a fix under
// way) and the source looked at again: once it no longer needs the fix,
// the run goes on with it pinned.
func (r *Run) fixOnceSettled(ctx context.Context, path string, opt gitstore.Options, needed func() bool, fix func(time.Duration) error) error {
	p := r.gitPins
	start, told := time.Now(), false
	for {
		p.Release()
		if err := p.Repin(ctx, opt.Waiting); err != nil {
			return err
		}
		if !needed() {
			return nil
		}
		p.Release()
		// Jitter: runners queued for one source do not retry in step.
		err := fix(fixSlice + rand.N(fixSlice))
		if !errors.Is(err, gitstore.ErrInUse) {
			return err
		}
		if !told && opt.Waiting != nil && time.Since(start) >= time.Second {
			told = true
			opt.Waiting(path)
		}
	}
}

// fixSlice is the shortest slice fixOnceSettled waits for an exclusive
// lock (the longest is twice it): each slice ends in pins and a check,
// milliseconds each on a network filesystem, and a runner behind
// another's build goes on at most a slice after its source is fine.
const fixSlice = 200 * time.Millisecond

// fixGit has cargo fetch, once across runners, what no db holds (a
// damaged db rebuilt first), then rebuilds the missing and broken
// checkouts from their db. It returns the findings after the fetch.
func (r *Run) fixGit(ctx context.Context, g gitstore.Store, srcs []gitstore.Source, findings []gitstore.Finding, opt gitstore.Options) []gitstore.Finding {
	var needFetch []gitstore.Source
	for _, f := range findings {
		if f.Verdict == gitstore.NeedsFetch {
			needFetch = append(needFetch, f.Source)
		}
	}
	if len(needFetch) > 0 && !r.Offline && !r.Nested {
		// cargo install fetches by itself (there is no workspace to
		// fetch for): only a damaged db is rebuilt here.
		fetch := r.cargoFetch
		if r.Cmd.Sub == "install" {
			fetch = nil
		}
		var ran bool
		stillMissing := func() bool {
			for _, s := range needFetch {
				if g.Check(ctx, s, gitstore.Level(r.Cfg.Verify)).Verdict == gitstore.NeedsFetch {
					return true
				}
			}
			return false
		}
		err := r.unpinnedFor(ctx, g.LockPaths(needFetch), opt, stillMissing, func(o gitstore.Options) (err error) {
			ran, err = g.FetchMissing(ctx, srcs, needFetch, o, fetch)
			return err
		})
		r.Log.Debug("git: %d sources need a fetch; cargo fetch ran: %v (%v)", len(needFetch), ran, err)
		if err != nil && !errors.Is(err, gitstore.ErrInUse) {
			r.Log.Warn("fetching git dependencies: %v", err)
		}
		findings = g.CheckAll(ctx, srcs, gitstore.Level(r.Cfg.Verify))
		for _, f := range findings {
			if ran && f.Verdict == gitstore.NeedsFetch {
				r.Log.Warn("git dependency %s: still not in %s after cargo fetch; left to cargo", f.Source, g.DB(f.Source))
			}
		}
	}
	if len(needFetch) > 0 && r.Offline {
		r.warnDamagedDBs(ctx, g, needFetch)
	}
	for _, f := range findings {
		if f.Verdict == gitstore.Missing || f.Verdict == gitstore.Broken {
			r.repairGit(ctx, g, f, opt)
		}
	}
	return findings
}

// recheckGit runs once the holder has pinned the git locks: a checkout
// broken since the repair (nothing that honours the locks changes a pinned
// one, but anyone else may) is repaired, and everything pinned again, up
// to maxRounds times. This process's own pins stay held meanwhile.
func (r *Run) recheckGit(holder *lockfile.Holder, lockPaths []string) error {
	if len(r.gitSrcs) == 0 {
		return nil
	}
	ctx, cancel := r.lockContext()
	defer cancel()
	opt := gitstore.Options{NoWait: r.Nested, Report: r.reportGit}
	for round := 0; ; round++ {
		findings := r.git.CheckAll(ctx, r.gitSrcs, gitstore.Level(r.Cfg.Verify))
		var broken []gitstore.Finding
		for _, f := range findings {
			// A db gone since the fetch (removed in between) would have
			// cargo fetch into it under shared locks only, racing other
			// runners: it is fetched again under exclusive ones.
			refetch := f.Verdict == gitstore.NeedsFetch && !r.gitUnfetched[f.Source] && !r.Offline
			if f.Verdict == gitstore.Missing || f.Verdict == gitstore.Broken || refetch {
				broken = append(broken, f)
			}
		}
		if len(broken) == 0 || r.Nested {
			return nil
		}
		if round == maxRounds {
			r.Log.Warn("the shared git directory kept changing while cargo-shim repaired it; %s left as it is", broken[0].Source)
			return nil
		}
		if err := holder.Release(); err != nil {
			return err
		}
		r.fixGit(ctx, r.git, r.gitSrcs, broken, opt)
		if err := holder.Lock(lockPaths, r.Cfg.LockTimeout, nil); err != nil {
			return r.lockError(err)
		}
	}
}

func (r *Run) repairGit(ctx context.Context, g gitstore.Store, f gitstore.Finding, opt gitstore.Options) {
	if f.Verdict == gitstore.Broken {
		r.Log.Warn("git dependency %s: %s", f.Source, f.Problem)
	}
	var act gitstore.Action
	stillBroken := func() bool { return g.Check(ctx, f.Source, gitstore.Level(r.Cfg.Verify)).Verdict != gitstore.Healthy }
	err := r.unpinnedFor(ctx, []string{g.CheckoutLock(f.Source)}, opt, stillBroken, func(o gitstore.Options) (err error) {
		act, err = g.Repair(ctx, f.Source, o)
		return err
	})
	switch {
	case errors.Is(err, gitstore.ErrInUse):
		r.Log.Debug("%s is in use by the build that runs us; not repairing it", f.Source)
	case err != nil:
		r.Log.Warn("repairing git dependency %s: %v", f.Source, err)
	default:
		r.reportGit(act)
	}
}

// reportGit says what a git repair did, or could not do.
func (r *Run) reportGit(act gitstore.Action) {
	switch {
	case act.Left:
		r.Log.Warn("cannot repair %s", act.Detail)
		r.rec.Act("left")
	case act.Verb != "":
		r.Log.Status(act.Verb, act.Detail)
		r.rec.Act("git")
	}
}

// warnDamagedDBs names, for an --offline run, each db that is damaged:
// rebuilding one needs the network, so it is left as it is and cargo
// fails on it as it would have.
func (r *Run) warnDamagedDBs(ctx context.Context, g gitstore.Store, srcs []gitstore.Source) {
	for _, s := range srcs {
		if why := g.DBDamage(ctx, s); why != "" {
			r.Log.Warn("git dependency %s: %s; left as it is: --offline, and rebuilding it needs the network (the next online run through the shim rebuilds it)", s, why)
		}
	}
}

// cargoFetch runs the real cargo's `fetch --locked` for the workspace of
// the planned Cargo.lock (never changing it), its output on stderr.
func (r *Run) cargoFetch() error {
	args := []string{}
	if r.Cmd.Toolchain != "" {
		args = append(args, r.Cmd.Toolchain)
	}
	args = append(args, "fetch", "--locked", "--manifest-path", filepath.Join(filepath.Dir(r.gitLock), "Cargo.toml"))
	cmd := exec.Command(r.real, args...)
	cmd.Env, cmd.Dir = r.env, r.Cwd
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cargo fetch: %w", err)
	}
	return nil
}

// gitNameOf names the git source a lock path belongs to, for messages.
func gitNameOf(srcs []gitstore.Source, g gitstore.Store, p string) string {
	for _, s := range srcs {
		if p == g.CheckoutLock(s) || p == g.DBLock(s) {
			return s.String()
		}
	}
	return p
}

// pinGitOnly pins the git sources when there is no registry plan to pin
// them with (no registry yet, no Cargo.lock registry part).
func (r *Run) pinGitOnly(gitLocks []string) (*lockfile.Holder, error) {
	if len(gitLocks) == 0 {
		return nil, nil
	}
	holder, err := lockfile.StartHolder(r.Self, len(gitLocks))
	if err != nil {
		return nil, fmt.Errorf("cannot start the lock holder: %w", err)
	}
	lw := newLockWait()
	err = holder.Lock(gitLocks, r.Cfg.LockTimeout, func(p string) {
		lw.waited.Store(true)
		r.Log.Status("Blocking", "waiting for lock on a git dependency (being repaired by another runner)")
	})
	r.endWait(lw)
	if err != nil {
		err = r.lockError(err)
	} else {
		err = r.recheckGit(holder, gitLocks)
	}
	if err != nil {
		holder.Stop()
		return nil, err
	}
	return holder, nil
}
