package gitstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Rule: a db is damaged only when git says so (it cannot open it, or a ref
// names a missing or corrupt object); a db that resolves the commit, or
// one that is readable but lacks it, or a corrupt object nothing names, is
// not; an absent db is not (cargo fetches it).
func TestDBDamageOnlyWhenGitSaysSo(t *testing.T) {
	ctx := context.Background()
	g, s, _ := newCheckout(t)
	db := g.DB(s)
	gitT(t, "", "--git-dir="+db, "repack", "-q", "-a", "-d")
	loose, _ := filepath.Glob(filepath.Join(db, "objects", "??"))
	for _, d := range loose {
		os.RemoveAll(d)
	}
	os.MkdirAll(filepath.Join(db, "objects", "ab"), 0o755)
	os.WriteFile(filepath.Join(db, "objects", "ab", strings.Repeat("c", 38)), []byte("not zlib"), 0o444)
	if why := g.DBDamage(ctx, s); why != "" {
		t.Fatalf("a db resolving the commit called damaged: %s", why)
	}
	later := s
	later.Commit = strings.Repeat("1", 40)
	if why := g.DBDamage(ctx, later); why != "" {
		t.Fatalf("a readable db lacking a commit called damaged: %s", why)
	}
	gone := s
	gone.Ident = "absent-0000000000000000"
	if why := g.DBDamage(ctx, gone); why != "" {
		t.Fatalf("an absent db called damaged: %s", why)
	}
	packs, _ := filepath.Glob(filepath.Join(db, "objects", "pack", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("no pack in the db")
	}
	for _, p := range packs {
		os.Truncate(p, 100)
	}
	if why := g.DBDamage(ctx, s); !strings.Contains(why, "missing or corrupt") {
		t.Fatalf("a truncated pack: %q", why)
	}
	os.Remove(filepath.Join(db, "HEAD"))
	if why := g.DBDamage(ctx, s); !strings.Contains(why, "not a repository") {
		t.Fatalf("HEAD removed: %q", why)
	}
}

// Rule: RebuildDB replaces a damaged db by one fetched from the URL that
// resolves the commit, swapped in (a new inode at the same path), and
// leaves a db it does not find damaged exactly as it is.
func TestRebuildDBSwapsInAFetchedDB(t *testing.T) {
	ctx := context.Background()
	g, s, _ := newCheckout(t)
	db := g.DB(s)
	before := inode(t, db)
	if act, err := g.RebuildDB(ctx, s); err != nil || act.Verb != "" || inode(t, db) != before {
		t.Fatalf("a healthy db was rebuilt: %+v %v", act, err)
	}
	os.Remove(filepath.Join(db, "HEAD"))
	act, err := g.RebuildDB(ctx, s)
	if err != nil || act.Verb != "Rebuilt" {
		t.Fatalf("rebuild: %+v %v", act, err)
	}
	if inode(t, db) == before {
		t.Fatal("the db was not swapped")
	}
	if _, err := tree(ctx, db, s.Commit); err != nil {
		t.Fatalf("the rebuilt db does not resolve the commit: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(g.Root, ".cargo-shim-tmp-*")); len(left) != 0 {
		t.Fatalf("stage left behind: %v", left)
	}
	if c := g.Resolve(ctx, s, Ref{Branch: "master"}) + g.Resolve(ctx, s, Ref{Branch: "main"}); c != s.Commit {
		t.Fatalf("the branch resolves to %q, want %s", c, s.Commit)
	}
}

// BenchmarkWarmCheck is the warm path of one small checkout: its stamp
// record alone, and with the db asked for the commit (one git process),
// as Check's fast path does.
func BenchmarkWarmCheck(b *testing.B) {
	g, s, co := newCheckout(b)
	time.Sleep(2 * racyWindow)
	if f := g.Check(context.Background(), s, Full); f.Verdict != Healthy {
		b.Fatalf("%+v", f)
	}
	if !g.stampsMatch(s, co) {
		b.Fatal("no stamp record")
	}
	b.Run("stamps", func(b *testing.B) {
		for range b.N {
			g.stampsMatch(s, co)
		}
	})
	b.Run("stamps+db", func(b *testing.B) {
		for range b.N {
			_ = g.stampsMatch(s, co) && g.dbHolds(context.Background(), s)
		}
	})
	b.Run("stamps+db-stamps", func(b *testing.B) {
		for range b.N {
			_ = g.stampsMatch(s, co) && g.dbHoldsStamped(context.Background(), s)
		}
	})
}

// Rule: the warm path's answer to "does the db hold the commit" comes from
// a record only while every stamp of what git read is unchanged: git is not
// run then, and a truncated commit object or pack sends it back to git,
// which says no.
func TestDBStampsAnswerOnlyWhileUnchanged(t *testing.T) {
	g, s, _ := newCheckout(t)
	time.Sleep(2 * racyWindow)
	ctx := context.Background()
	if !g.dbHoldsStamped(ctx, s) {
		t.Fatal("a healthy db does not hold its commit")
	}
	path := os.Getenv("PATH")
	t.Setenv("PATH", "") // no git: only the record can answer
	if !g.dbHoldsStamped(ctx, s) {
		t.Fatal("an unchanged db was not answered from its record")
	}
	t.Setenv("PATH", path)
	loose := filepath.Join(g.DB(s), "objects", s.Commit[:2], s.Commit[2:])
	damaged := []string{loose}
	if _, err := os.Lstat(loose); err != nil {
		damaged, _ = filepath.Glob(filepath.Join(g.DB(s), "objects", "pack", "*.pack"))
	}
	for _, p := range damaged {
		os.Chmod(p, 0o644)
		if err := os.Truncate(p, 10); err != nil {
			t.Fatal(err)
		}
	}
	if g.dbHoldsStamped(ctx, s) {
		t.Fatalf("the record vouched for a db whose commit object was truncated (%v)", damaged)
	}
}
