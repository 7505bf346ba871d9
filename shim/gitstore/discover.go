package gitstore

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Discover lists the checkouts present, for the admin command without a
// Cargo.lock: checkouts/<ident>/<short id>/, the short id expanded to the
// commit by the db (what cargo resolved it from). Without a db that holds
// it, the checkout's own HEAD names the commit when it starts with the
// short id. Its URL is not known: submodules with relative URLs are then
// not compared (the check says nothing of what it cannot name).
func (g Store) Discover() (srcs []Source, unknown []string) {
	idents, _ := os.ReadDir(filepath.Join(g.Root, "checkouts"))
	for _, id := range idents {
		if !id.IsDir() || strings.HasPrefix(id.Name(), ".") {
			continue
		}
		revs, _ := os.ReadDir(filepath.Join(g.Root, "checkouts", id.Name()))
		for _, rev := range revs {
			if !rev.IsDir() || strings.HasPrefix(rev.Name(), ".") {
				continue
			}
			co := filepath.Join(g.Root, "checkouts", id.Name(), rev.Name())
			if s, ok := g.identify(id.Name(), rev.Name(), co); ok {
				srcs = append(srcs, s)
			} else {
				unknown = append(unknown, co)
			}
		}
	}
	sort.Slice(srcs, func(a, b int) bool { return srcs[a].Ident+srcs[a].Commit < srcs[b].Ident+srcs[b].Commit })
	return srcs, unknown
}

func (g Store) identify(ident, shortID, co string) (Source, bool) {
	s := Source{Name: ident, Ident: ident}
	ctx := context.Background()
	for _, args := range [][]string{
		{"--git-dir=" + filepath.Join(g.Root, "db", ident), "rev-parse", "--verify", "-q", shortID + "^{commit}"},
		{"--git-dir=" + filepath.Join(co, ".git"), "rev-parse", "--verify", "-q", "HEAD"},
	} {
		out, err := gitOut(ctx, "", args...)
		if c := strings.TrimSpace(string(out)); err == nil && validCommit(c) && strings.HasPrefix(c, shortID) {
			s.Commit = c
			return s, true
		}
	}
	return s, false
}
