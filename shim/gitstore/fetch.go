package gitstore

import (
	"context"
	"fmt"

	"github.com/cargo-shim/cargo-shim/lockfile"
)

// FetchMissing has cargo fetch, once across every runner sharing this
// directory, the sources (of all, the workspace's) whose db lacks their
// commit. Cargo's own lock is per CARGO_HOME and nothing under git/ is
// locked by cargo, so runners sharing git/ would otherwise fetch into one
// db at once (and delete and re-create it on any failure). Under the
// exclusive checkout and db locks of every such source, each is looked at
// again (another runner may have fetched it meanwhile), a db proven
// damaged is rebuilt (RebuildDB), and fetch (the real `cargo fetch`) runs
// only if one still lacks its commit. `cargo fetch` reads every source of
// the workspace (and checks out one whose checkout is gone), so the others
// are held shared meanwhile, as a build holds them: no lock-honouring
// reaper or gc removes them under it. It reports whether fetch ran;
// fetch's error is returned as is. A nil fetch only rebuilds damaged dbs.
func (g Store) FetchMissing(ctx context.Context, all, srcs []Source, opt Options, fetch func() error) (bool, error) {
	mode := map[string]lockfile.Mode{}
	for _, s := range all {
		mode[g.CheckoutLock(s)], mode[g.DBLock(s)] = lockfile.Shared, lockfile.Shared
	}
	for _, s := range srcs {
		mode[g.CheckoutLock(s)], mode[g.DBLock(s)] = lockfile.Exclusive, lockfile.Exclusive
	}
	var paths []string
	for p := range mode {
		paths = append(paths, p)
	}
	paths = lockfile.SortPaths(paths)
	modes := make([]lockfile.Mode, len(paths))
	for n, p := range paths {
		modes[n] = mode[p]
	}
	held, err := g.lock(ctx, paths, modes, opt)
	if err != nil {
		return false, err
	}
	defer unlock(held, opt)
	if g.allFetched(ctx, srcs) {
		return false, nil
	}
	g.rebuildDamagedDBs(ctx, srcs, opt)
	if fetch == nil || g.allFetched(ctx, srcs) {
		return false, nil
	}
	return true, fetch()
}

// rebuildDamagedDBs rebuilds, under the exclusive locks FetchMissing holds,
// each db among srcs' that is damaged (see RebuildDB), once per db: cargo's
// fetch would delete and re-create it, or with net.git-fetch-with-cli fail
// on it every run. What was done or left is reported through opt.Report.
func (g Store) rebuildDamagedDBs(ctx context.Context, srcs []Source, opt Options) {
	done := map[string]bool{}
	for _, s := range srcs {
		if done[s.Ident] {
			continue
		}
		done[s.Ident] = true
		act, err := g.RebuildDB(ctx, s)
		if err != nil {
			act = Action{Left: true, Detail: fmt.Sprintf("%s: rebuilding its db %s: %v", s, g.DB(s), err)}
		}
		if (act.Verb != "" || act.Left) && opt.Report != nil {
			opt.Report(act)
		}
	}
}

func (g Store) allFetched(ctx context.Context, srcs []Source) bool {
	for _, s := range srcs {
		if _, err := tree(ctx, g.DB(s), s.Commit); err != nil {
			return false
		}
	}
	return true
}
