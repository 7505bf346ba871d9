package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// Store is a shared $CARGO_HOME/git directory.
type Store struct {
	Root string
}

func (g Store) DB(s Source) string { return filepath.Join(g.Root, "db", s.Ident) }

// Checkouts is the directory of s's repository's checkouts, one per commit.
func (g Store) Checkouts(s Source) string { return filepath.Join(g.Root, "checkouts", s.Ident) }

func (g Store) ShimDir() string { return filepath.Join(g.Root, ".cargo-shim") }

// CheckoutLock is held shared while a build uses s's checkout and
// exclusively while the shim rebuilds it. It is named by the full commit,
// known before the checkout's short name is, and lives outside git/db and
// git/checkouts: removing a checkout or a db never removes its lock.
func (g Store) CheckoutLock(s Source) string {
	return filepath.Join(g.ShimDir(), "locks", "checkouts", s.Ident, s.Commit+".lock")
}

// DBLock is held shared while a build may read s's db and exclusively while
// the shim has cargo fetch into it.
func (g Store) DBLock(s Source) string {
	return filepath.Join(g.ShimDir(), "locks", "db", s.Ident+".lock")
}

// LockPaths is what a build pins: every source's checkout and db lock.
func (g Store) LockPaths(srcs []Source) []string {
	out := make([]string, 0, 2*len(srcs))
	for _, s := range srcs {
		out = append(out, g.CheckoutLock(s), g.DBLock(s))
	}
	return out
}

func (g Store) StatePath(s Source) string {
	return filepath.Join(g.ShimDir(), "state", s.Ident, s.Commit)
}

func (g Store) TrashDir() string { return filepath.Join(g.ShimDir(), "trash") }

// Checkout is the directory cargo checks s out into: checkouts/<ident>/
// <short id>, the short id being libgit2's git_object_short_id in the db
// (7 hex digits, more where that is ambiguous in the db). A directory
// already there whose name is a prefix of the commit is the one cargo made;
// otherwise the db says; without a db, the 7-digit form.
func (g Store) Checkout(s Source) string {
	if ents, err := os.ReadDir(g.Checkouts(s)); err == nil {
		for _, e := range ents {
			n := e.Name()
			if len(n) >= 7 && strings.HasPrefix(s.Commit, n) {
				return filepath.Join(g.Checkouts(s), n)
			}
		}
	}
	if out, err := gitOut(context.Background(), "", "--git-dir="+g.DB(s), "rev-parse", "--short=7", s.Commit+"^{commit}"); err == nil {
		if n := strings.TrimSpace(string(out)); len(n) >= 7 && strings.HasPrefix(s.Commit, n) {
			return filepath.Join(g.Checkouts(s), n)
		}
	}
	return filepath.Join(g.Checkouts(s), short(s.Commit))
}

// gitTimeout bounds one local git command (no network is ever used by the
// commands this package runs).
const gitTimeout = 5 * time.Minute

// gitOut runs the git CLI on the shared directory. Anything there may have
// been written by another uid, so git reads no system or global config,
// accepts directories it does not own (it only reads them, or writes in
// the shim's own temporary ones), never prompts, and runs no hook, fsmonitor
// or filter a repository's config could name: the commands used (rev-parse,
// ls-tree, cat-file, config --blob, clone --local, checkout in a fresh
// clone) consult none of a hostile repository's config but core settings.
func gitOut(ctx context.Context, dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	full := append([]string{"-c", "safe.directory=*", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=never", "-c", "protocol.file.allow=always"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return out, fmt.Errorf("git %s: %v: %s", args[len(args)-1], err, msg)
	}
	return out, nil
}

// gitEnv is the caller's environment without GIT_* variables (a GIT_DIR or
// GIT_WORK_TREE meant for the project would redirect every command), with
// no system or global config and no prompt.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=cargo-shim", "GIT_AUTHOR_EMAIL=cargo-shim@localhost", "GIT_COMMITTER_NAME=cargo-shim", "GIT_COMMITTER_EMAIL=cargo-shim@localhost")
}

// Open declares the directory to the lock package: every lock and record
// path below it is then resolved beneath its descriptor, no link followed,
// and the shared directories the shim creates there are sticky (no uid can
// rename another's lock file or record). Call it before starting a holder.
func (g Store) Open() error { return lockfile.Beneath(g.Root) }
