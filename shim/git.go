package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/gitstore"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// gitSources is the git part of the plan: Cargo.lock's git sources. None
// for `cargo install` (not planned yet) or without a Cargo.lock.
func (r *Run) gitSources() []gitstore.Source {
	if r.Cmd.Sub == "install" {
		return nil
	}
	lockPath := store.FindCargoLock(r.Cwd, r.Cmd.ManifestPath)
	if lockPath == "" {
		return nil
	}
	data, err := os.ReadFile(lockPath)
	if err != nil || !bytes.Contains(data, []byte(`"git+`)) {
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
// have cargo fetch what no db holds (once across runners), check every
// checkout, rebuild the missing and broken ones from their db. It returns
// the lock paths that pin the checkouts and dbs for the build. Nothing
// here stops the run: a failure is one warning and cargo does as it would.
func (r *Run) prepareGit() []string {
	srcs := r.gitSources()
	if len(srcs) == 0 {
		return nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		r.Log.Warn("git dependencies are not checked: the git command is not on PATH (%v)", err)
		return nil
	}
	g := gitstore.Store{Root: filepath.Join(r.Cfg.CargoHome, "git")}
	if err := os.MkdirAll(g.Root, 0o755); err != nil {
		r.Log.Warn("git sources: %v; left to cargo", err)
		return nil
	}
	if err := g.Open(); err != nil {
		r.Log.Warn("git sources: %v; left to cargo", err)
		return nil
	}
	ctx, cancel := r.lockContext()
	defer cancel()
	opt := gitstore.Options{NoWait: r.Nested, Waiting: func(p string) {
		r.Log.Status("Blocking", "waiting for lock on git dependency "+gitNameOf(srcs, g, p)+" (in use by another runner)")
	}}
	findings := g.CheckAll(ctx, srcs, gitstore.Level(r.Cfg.Verify))
	var needFetch []gitstore.Source
	fast := 0
	for _, f := range findings {
		if f.Fast {
			fast++
		}
		if f.Verdict == gitstore.NeedsFetch {
			needFetch = append(needFetch, f.Source)
		}
	}
	r.Log.Debug("git: %d sources checked, %d by their stamp record (%s)", len(srcs), fast, time.Since(r.start))
	if len(needFetch) > 0 && !r.Offline && !r.Nested {
		ran, err := g.FetchMissing(ctx, needFetch, opt, r.cargoFetch)
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
	for _, f := range findings {
		if f.Verdict != gitstore.Missing && f.Verdict != gitstore.Broken {
			continue
		}
		r.repairGit(ctx, g, f, opt)
	}
	r.git, r.gitSrcs = g, srcs
	return g.LockPaths(srcs)
}

// recheckGit runs once the holder has pinned the git locks: a checkout
// broken between the repair and the pin (nothing the shim does changes a
// checkout without its exclusive lock, but anyone else may) is repaired,
// and everything pinned again, up to maxRounds times.
func (r *Run) recheckGit(holder *lockfile.Holder, lockPaths []string) error {
	if len(r.gitSrcs) == 0 {
		return nil
	}
	ctx, cancel := r.lockContext()
	defer cancel()
	opt := gitstore.Options{NoWait: r.Nested}
	for round := 0; ; round++ {
		var broken []gitstore.Finding
		for _, f := range r.git.CheckAll(ctx, r.gitSrcs, gitstore.Level(r.Cfg.Verify)) {
			if f.Verdict == gitstore.Missing || f.Verdict == gitstore.Broken {
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
		for _, f := range broken {
			r.repairGit(ctx, r.git, f, opt)
		}
		if err := holder.Lock(lockPaths, r.Cfg.LockTimeout, nil); err != nil {
			return r.lockError(err)
		}
	}
}

func (r *Run) repairGit(ctx context.Context, g gitstore.Store, f gitstore.Finding, opt gitstore.Options) {
	if f.Verdict == gitstore.Broken {
		r.Log.Warn("git dependency %s: %s", f.Source, f.Problem)
	}
	act, err := g.Repair(ctx, f.Source, opt)
	switch {
	case errors.Is(err, gitstore.ErrInUse):
		r.Log.Debug("%s is in use by the build that runs us; not repairing it", f.Source)
	case err != nil:
		r.Log.Warn("repairing git dependency %s: %v", f.Source, err)
	case act.Left:
		r.Log.Warn("cannot repair %s", act.Detail)
		r.rec.Act("left")
	case act.Verb != "":
		r.Log.Status(act.Verb, act.Detail)
		r.rec.Act("git")
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
