package gitstore

import (
	"context"
	"github.com/cargo-shim/cargo-shim/lockfile"
	"strings"
)

// Ref is how a command names a revision of a repository, as cargo's
// GitReference: at most one of Branch, Tag and Rev; none is the remote's
// default branch.
type Ref struct {
	Branch, Tag, Rev string
}

// Resolve is the commit ref names in s's db, as cargo resolves it there
// after its fetch (refs/remotes/origin/<branch>, .../tags/<tag>,
// .../HEAD, a rev by id), or "" when the db does not say (absent, damaged,
// or never fetched with that ref). A full commit id is itself.
func (g Store) Resolve(ctx context.Context, s Source, ref Ref) string {
	var name string
	switch {
	case ref.Rev != "" && validCommit(strings.ToLower(ref.Rev)):
		return strings.ToLower(ref.Rev)
	case ref.Rev != "":
		if strings.HasPrefix(ref.Rev, "-") {
			return ""
		}
		name = ref.Rev
	case ref.Tag != "":
		name = "refs/remotes/origin/tags/" + ref.Tag
	case ref.Branch != "":
		name = "refs/remotes/origin/" + ref.Branch
	default:
		name = "refs/remotes/origin/HEAD"
	}
	out, err := gitOut(ctx, "", "--git-dir="+g.DB(s), "rev-parse", "--verify", "-q", name+"^{commit}")
	if c := strings.TrimSpace(string(out)); err == nil && validCommit(c) {
		return c
	}
	return ""
}

// RebuildDBLocked rebuilds s's db if it is damaged (RebuildDB), under the
// db's exclusive lock, for a source whose commit is not known (s.Commit
// empty: no checkout lock names it).
func (g Store) RebuildDBLocked(ctx context.Context, s Source, opt Options) (Action, error) {
	held, err := g.lock(ctx, []string{g.DBLock(s)}, []lockfile.Mode{lockfile.Exclusive}, opt)
	if err != nil {
		return Action{}, err
	}
	defer releaseAll(held)
	return g.RebuildDB(ctx, s)
}
