package shim

import (
	"context"
	"errors"

	"github.com/cargo-shim/cargo-shim/shim/gitstore"
)

// installGitSources is the git part of `cargo install --git URL
// [--branch|--tag|--rev]`'s plan: the URL's source at the commit its db
// resolves the reference to (what cargo checks out when the remote has not
// moved since its last fetch). A db too damaged to resolve it is rebuilt
// first, under its exclusive lock (network needed, once). None when the
// commit is not known: cargo then fetches and checks out as it would.
func (r *Run) installGitSources(ctx context.Context, g gitstore.Store, opt gitstore.Options) []gitstore.Source {
	a := parseInstallArgs(r.Cmd.SubArgs)
	name := "cargo install --git " + a.gitURL
	if len(a.crates) > 0 {
		name = a.crates[0]
	}
	s, ok := gitstore.SourceOf(name, a.gitURL)
	if !ok {
		r.Log.Debug("cargo install --git %s: not a URL cargo-shim can name directories for; not planned", a.gitURL)
		return nil
	}
	s.Commit = g.Resolve(ctx, s, a.gitRef)
	if s.Commit == "" && !r.Offline && !r.Nested {
		act, err := g.RebuildDBLocked(ctx, s, opt)
		switch {
		case errors.Is(err, gitstore.ErrInUse):
		case err != nil:
			r.Log.Warn("git dependency %s: %v", s, err)
		default:
			r.reportGit(act)
		}
		s.Commit = g.Resolve(ctx, s, a.gitRef)
	}
	if s.Commit == "" {
		if why := g.DBDamage(ctx, s); why != "" {
			r.Log.Warn("cargo install --git %s: %s; left as it is", a.gitURL, why)
		}
		r.Log.Debug("cargo install --git %s: %s does not name the commit yet; not planned", a.gitURL, g.DB(s))
		return nil
	}
	return []gitstore.Source{s}
}
