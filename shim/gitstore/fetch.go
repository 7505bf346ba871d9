package gitstore

import (
	"context"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// FetchMissing has cargo fetch, once across every runner sharing this
// directory, the sources whose db lacks their commit. Cargo's own lock is
// per CARGO_HOME and nothing under git/ is locked by cargo, so runners
// sharing git/ would otherwise fetch into one db at once (and delete and
// re-create it on any failure). Under the exclusive checkout and db locks
// of every such source, each is looked at again (another runner may have
// fetched it meanwhile) and fetch (the real `cargo fetch`) runs only if one
// still lacks its commit. It reports whether fetch ran; fetch's error is
// returned as is.
func (g Store) FetchMissing(ctx context.Context, srcs []Source, opt Options, fetch func() error) (bool, error) {
	var paths []string
	for _, s := range srcs {
		paths = append(paths, g.CheckoutLock(s), g.DBLock(s))
	}
	paths = lockfile.SortPaths(paths)
	modes := make([]lockfile.Mode, len(paths))
	for n := range modes {
		modes[n] = lockfile.Exclusive
	}
	held, err := g.lock(ctx, paths, modes, opt)
	if err != nil {
		return false, err
	}
	defer releaseAll(held)
	if g.allFetched(ctx, srcs) {
		return false, nil
	}
	return true, fetch()
}

func (g Store) allFetched(ctx context.Context, srcs []Source) bool {
	for _, s := range srcs {
		if _, err := tree(ctx, g.DB(s), s.Commit); err != nil {
			return false
		}
	}
	return true
}
