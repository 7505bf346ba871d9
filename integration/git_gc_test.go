package integration

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// gc --crate-max-age D removes a git db, as it removes a tarball, only when
// nothing is rebuilt from it: no checkout of it is left, no checkout left
// took a submodule from it, and no build or fetch holds its lock (taken
// exclusively without waiting: a pin keeps it). The dry run names exactly
// what the real run removes, and an online build afterwards fetches what
// went and passes.
func TestGitGCRemovesDBsNothingIsRebuiltFrom(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	writeFile(t, filepath.Join(home, "registry", ".cargo-shim", ".keep"), "")
	heldCheckout := w.HoldCheckout("gsub") // keeps gsub's db, and inner's (its submodule)
	heldDB := w.HoldDB("grev")             // its checkout goes; its db is pinned
	gc := func(args ...string) admin.GCReport {
		r := loopback.Start(filepath.Join(binDir, "cargo-shim"), work, loopback.CargoEnv(home, ""),
			append([]string{"gc", "--max-age", "0", "--crate-max-age", "0", "--json"}, args...)).Wait()
		rep := decode[admin.GCReport](t, Result(r))
		if rep.Git == nil {
			t.Fatalf("gc reported no git: %s", r)
		}
		return rep
	}
	dbs := func() []string {
		m, _ := filepath.Glob(filepath.Join(w.Shared, "db", "*"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	before := dbs()
	dry := gc("--dry-run")
	if got := dbs(); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Fatalf("the dry run removed dbs: %v, then %v", before, got)
	}
	done := gc()
	want := []string{"gbranch", "gbuild", "gtag"}
	if got := rowNames(dry.Git.DBsRemoved); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the dry run would remove dbs %v, want %v (kept: %q)", got, want, dry.Git.DBsKept)
	}
	if got := rowNames(done.Git.DBsRemoved); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("gc removed dbs %v, want %v (kept: %q)", got, want, done.Git.DBsKept)
	}
	if got := rowNames(done.Git.DBsBusy); strings.Join(got, " ") != "grev" {
		t.Errorf("gc found dbs %v in use, want grev (pinned)", got)
	}
	left := strings.Join(depNames(dbs()), " ")
	if left != "grev gsub inner" {
		t.Errorf("dbs left after gc: %s; want grev (pinned), gsub (its checkout is held), inner (gsub's submodule)", left)
	}
	heldCheckout.Release()
	heldDB.Release()
	if r := w.Build(work, home, true).Wait(); r.Code != 0 {
		t.Fatalf("an online build after gc removed dbs: %s", r)
	}
}

// HoldDB takes the shared lock of dependency name's db, as a running
// build's holder does.
func (w *GitWorld) HoldDB(name string) *lockfile.Lock {
	return w.holdShared(filepath.Join("db", name+"-*.lock"))
}

// holdShared takes the one lock below git/.cargo-shim/locks that pattern
// matches, shared.
func (w *GitWorld) holdShared(pattern string) *lockfile.Lock {
	w.t.Helper()
	locks, _ := filepath.Glob(filepath.Join(w.Shared, ".cargo-shim", "locks", pattern))
	if len(locks) != 1 {
		w.t.Fatalf("locks %s: %v", pattern, locks)
	}
	held, err := lockfile.Acquire(context.Background(), locks[0], lockfile.Shared, lockfile.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	return held
}

// rowNames are the dependency names of rows, sorted.
func rowNames(rows []admin.GitGCRow) []string {
	idents := make([]string, len(rows))
	for i, r := range rows {
		idents[i] = r.Source
	}
	return depNames(idents)
}

// depNames are the dependency names of idents (name-hash), sorted.
func depNames(idents []string) []string {
	var out []string
	for _, id := range idents {
		out = append(out, id[:strings.LastIndexByte(id, '-')])
	}
	sort.Strings(out)
	return out
}
