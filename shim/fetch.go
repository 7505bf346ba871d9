package shim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// On NFS cargo takes no lock at all: it statfs()es its lock files, sees
// NFS_SUPER_MAGIC and skips every flock. Sharing its package-cache lock
// then protects nothing, and K runners starting cold download and unpack
// the same crates into the same directories at once (measured: 3 of 4 fail
// with "File exists" or "unexpected end of file"). So where the plan has
// cold crates and the registry is on NFS, one runner at a time runs the
// real cargo's `cargo fetch` under the shim's own exclusive lock; the
// others wait for it, then find the crates there and fetch nothing. The
// fetch lock is released before the build: it is never held for a build.

// fetchCold fetches the planned crates missing from the registry under its
// fetch lock when the registry is on NFS. It runs once the planned set is
// pinned: the crates' lock files (or the cold lock, on a registry with no
// index yet) are held shared, so what it finds present, or fetches, gc
// cannot remove before the build uses it; and a crate gc removed between
// the plan and the pin is found missing here. A fetch that fails is only a warning: the build's own cargo then
// fetches (and reports) as it would have.
func (r *Run) fetchCold() error {
	if r.Nested || r.Cmd.Sub == "install" || r.real == "" || !lockfile.IsNFS(r.Reg.Root) || r.Reg.Missing(r.plan) == 0 {
		return nil
	}
	ctx, cancel := r.lockContext()
	defer cancel()
	lw := newLockWait()
	l, err := lockfile.Acquire(ctx, r.Reg.FetchLock(), lockfile.Exclusive, lockfile.Options{Waiting: func(string) {
		lw.waited.Store(true)
		r.Log.Status("Blocking", "waiting for another runner to fetch crates (cargo takes no lock on NFS)")
	}})
	r.endWait(lw)
	if err != nil {
		return r.lockError(err)
	}
	defer l.Release()
	// Another runner may have fetched them while we waited.
	missing := r.Reg.Missing(r.plan)
	if missing == 0 {
		return nil
	}
	t0 := time.Now()
	if err := r.runFetch(); err != nil {
		r.Log.Warn("cargo fetch of %d crates missing from the registry failed (%v); the build's cargo fetches them itself", missing, err)
	}
	r.Log.Debug("fetched %d missing crates on NFS in %s", missing, time.Since(t0))
	return nil
}

// runFetch runs the real cargo's `cargo fetch` for the same manifest, with
// the command's options that decide what may be fetched and from where.
// Its output goes to stderr: the build's stdout may be read by a program.
func (r *Run) runFetch() error {
	args := r.fetchArgs()
	cmd := exec.Command(r.real, args...)
	cmd.Dir = r.Cwd
	cmd.Env = r.env
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("cargo %s: %s", strings.Join(args, " "), ee.ProcessState)
	}
	return err
}

// fetchArgs: +toolchain, then fetch with the manifest path, --offline,
// --frozen, --locked, --config and -Z as the command gave them.
func (r *Run) fetchArgs() []string {
	var out []string
	if r.Cmd.Toolchain != "" {
		out = append(out, r.Cmd.Toolchain)
	}
	out = append(out, "fetch")
	if r.Cmd.Quiet {
		out = append(out, "--quiet")
	}
	if r.Cmd.ManifestPath != "" {
		out = append(out, "--manifest-path", r.Cmd.ManifestPath)
	}
	if r.Offline {
		out = append(out, "--offline")
	}
	args := r.Cmd.Args
	for n := 0; n < len(args) && args[n] != "--"; n++ {
		a := args[n]
		switch {
		case a == "--frozen" || a == "--locked":
			out = append(out, a)
		case (a == "--config" || a == "-Z") && n+1 < len(args):
			out = append(out, a, args[n+1])
			n++
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-Z") && len(a) > 2:
			out = append(out, a)
		}
	}
	return out
}
