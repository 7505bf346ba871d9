package gitstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cargo-shim/cargo-shim/safefs"
)

// A db that does not resolve a locked commit is one of two things: a
// healthy db that has not fetched that commit yet (cargo fetches it), or a
// damaged one (a truncated or missing pack or loose object, a missing HEAD
// or objects/). Cargo handles the second by deleting the db and
// initialising it again, with no lock across runners: another runner
// reading or fetching into it at that moment fails. With
// net.git-fetch-with-cli cargo does not even do that, and a damaged db
// fails (or spins) on every run. The shim rebuilds a db it proves damaged
// under the source's exclusive locks, in a directory of its own, and swaps
// it in with one rename.

// DBDamage says why s's db is damaged, or "" when it is absent or can be
// read (then it merely lacks the commit, or holds it). Only what git itself
// reports as unreadable counts: the db is not a repository git can open,
// or a ref names an object that is missing or corrupt. A db that resolves
// the commit's tree is never damaged here, whatever else is odd in it (the
// caller asks only when it does not). Nothing is changed.
func (g Store) DBDamage(ctx context.Context, s Source) string {
	db := g.DB(s)
	fi, err := os.Lstat(db)
	if err != nil || !fi.IsDir() {
		// Absent (cargo fetches it) or not a directory (not provably
		// cargo's db: left as it is).
		return ""
	}
	if _, err := tree(ctx, db, s.Commit); err == nil {
		return ""
	}
	if _, err := gitOut(ctx, "", "--git-dir="+db, "rev-parse", "--git-dir"); err != nil {
		return fmt.Sprintf("%s is not a repository git can open (HEAD, objects/ or refs/ missing)", db)
	}
	if _, err := gitOut(ctx, "", "--git-dir="+db, "fsck", "--no-dangling", "--no-progress", "--connectivity-only"); err != nil {
		return fmt.Sprintf("%s has refs naming missing or corrupt objects (%v)", db, err)
	}
	return ""
}

// RebuildDB replaces s's damaged db with a fresh one fetched from s's URL
// (network needed, once). The caller holds s's db lock exclusively (no
// build reads the db, no runner fetches into it). Under that lock the db
// is looked at again and rebuilt only if still damaged: a fresh bare
// repository in a stage directory of the shim's own, fetched with cargo's
// refspecs (every branch and tag, and the locked commit by id when no
// branch or tag has it), checked to resolve the commit's tree, then
// exchanged with the damaged db in one rename; the damaged one lands in
// the stage and is removed with it. Until that rename the damaged db is
// left exactly as it was, so a failed fetch loses nothing.
func (g Store) RebuildDB(ctx context.Context, s Source) (Action, error) {
	why := g.DBDamage(ctx, s)
	if why == "" {
		return Action{}, nil
	}
	rel, err := g.rel(g.DB(s))
	if err != nil {
		return Action{}, err
	}
	err = g.stageAndSwap(rel, func(stage *safefs.Dir, name string) error {
		return g.fetchDB(ctx, s, stage.Join(name))
	})
	if err != nil {
		return Action{Left: true, Detail: fmt.Sprintf("%s: %s: cannot rebuild it from %s: %v", s, why, s.URL, err)}, nil
	}
	return Action{Verb: "Rebuilt", Detail: fmt.Sprintf("git db %s from %s (%s)", g.DB(s), s.URL, why)}, nil
}

// netProtocols are the transports the db fetch may use: those cargo
// fetches with (no ext::, no fd::).
var netProtocols = []string{"https", "http", "ssh", "git", "file"}

// fetchDB makes dir a bare repository holding s's commit, as cargo's db
// (every branch and tag when no commit is known).
func (g Store) fetchDB(ctx context.Context, s Source, dir string) error {
	if _, err := gitOut(ctx, "", "init", "-q", "--bare", dir); err != nil {
		return err
	}
	var allow []string
	for _, p := range netProtocols {
		allow = append(allow, "-c", "protocol."+p+".allow=always")
	}
	fetch := func(refspecs ...string) error {
		args := append(append([]string{}, allow...), "--git-dir="+dir, "fetch", "-q", "--no-tags", "--", s.URL)
		_, err := gitOut(ctx, "", append(args, refspecs...)...)
		return err
	}
	err := fetch("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/remotes/origin/tags/*")
	if s.Commit == "" {
		// No commit known (cargo install --git): what cargo fetches for
		// the default branch too.
		return errors.Join(err, fetch("+HEAD:refs/remotes/origin/HEAD"))
	}
	if _, terr := tree(ctx, dir, s.Commit); terr == nil {
		return nil
	}
	// The commit is on no branch or tag (a rev cargo fetched by id).
	if err2 := fetch("+" + s.Commit + ":refs/commit/" + s.Commit); err2 != nil {
		return errors.Join(err, err2)
	}
	if _, err := tree(ctx, dir, s.Commit); err != nil {
		return fmt.Errorf("the fetched db does not resolve %s: %w", s.Commit, err)
	}
	return nil
}

// stageAndSwap builds a replacement for rel (below git/) with build, which
// writes stage/name, then swaps it in between held descriptors: exchanged
// with what is at rel (which lands in the stage and is removed with it,
// beneath git/'s descriptor), or renamed into place when nothing is.
func (g Store) stageAndSwap(rel string, build func(stage *safefs.Dir, name string) error) error {
	root, err := g.root()
	if err != nil {
		return err
	}
	defer root.Close()
	parent, err := root.MkdirAll(filepath.Dir(rel), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	stage, name, err := g.stageDir(root)
	if err != nil {
		return err
	}
	defer stage.Close()
	defer root.RemoveAll(name)
	if err := build(stage, "new"); err != nil {
		return err
	}
	return swapIn(stage, "new", parent, filepath.Base(rel))
}
