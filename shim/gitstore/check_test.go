package gitstore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitT runs git for a test, with no user or system config.
func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newCheckout makes a repository, a db holding its commit where cargo
// keeps it, and the checkout rebuilt by the shim.
func newCheckout(t testing.TB) (Store, Source, string) {
	t.Helper()
	root := t.TempDir()
	up := filepath.Join(root, "up")
	for p, c := range map[string]string{"Cargo.toml": "[package]\nname = \"d\"\n", "src/lib.rs": "pub fn f() {}\n", "run.sh": "#!/bin/sh\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(up, p)), 0o755)
		os.WriteFile(filepath.Join(up, p), []byte(c), 0o644)
	}
	os.Chmod(filepath.Join(up, "run.sh"), 0o755)
	gitT(t, root, "init", "-q", up)
	gitT(t, up, "add", "-A")
	gitT(t, up, "commit", "-qm", "one")
	commit := gitT(t, up, "rev-parse", "HEAD")
	s, ok := ParseSource("d", "git+file://"+up+"#"+commit)
	if !ok {
		t.Fatal("source not parsed")
	}
	g := Store{Root: filepath.Join(root, "git")}
	gitT(t, root, "clone", "-q", "--bare", up, g.DB(s))
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	if act, err := g.Repair(context.Background(), s, Options{}); err != nil || act.Verb != "Rebuilt" {
		t.Fatalf("first checkout: %+v %v", act, err)
	}
	return g, s, g.Checkout(s)
}

// Rule: the full check compares every path, type, size and executable bit
// with the commit's tree and refuses paths the commit does not have; the
// deep check compares content too.
func TestCheckFindsEachDifference(t *testing.T) {
	g, s, co := newCheckout(t)
	ctx := context.Background()
	if f := g.Check(ctx, s, Full); f.Verdict != Healthy {
		t.Fatalf("fresh checkout: %v %s", f.Verdict, f.Problem)
	}
	for _, c := range []struct {
		name   string
		damage func()
		undo   func()
		lvl    Level
	}{
		{"file deleted", func() { os.Remove(filepath.Join(co, "src/lib.rs")) }, nil, Full},
		{"executable bit dropped", func() { os.Chmod(filepath.Join(co, "run.sh"), 0o644) }, func() { os.Chmod(filepath.Join(co, "run.sh"), 0o755) }, Full},
		{"stray build.rs", func() { os.WriteFile(filepath.Join(co, "build.rs"), nil, 0o644) }, func() { os.Remove(filepath.Join(co, "build.rs")) }, Full},
		{"same size, other content", func() { os.WriteFile(filepath.Join(co, "src/lib.rs"), []byte("pub fn g() {}\n"), 0o644) }, nil, Deep},
		{"no .cargo-ok", func() { os.Remove(filepath.Join(co, ".cargo-ok")) }, nil, Full},
	} {
		c.damage()
		f := g.Check(ctx, s, c.lvl)
		if f.Verdict == Healthy {
			t.Errorf("%s: found healthy", c.name)
		}
		if c.undo != nil {
			c.undo()
		} else if act, err := g.Repair(ctx, s, Options{}); err != nil || act.Verb != "Rebuilt" {
			t.Fatalf("%s: repair: %+v %v", c.name, act, err)
		}
		if f := g.Check(ctx, s, Deep); f.Verdict != Healthy {
			t.Fatalf("%s: after repair: %v %s", c.name, f.Verdict, f.Problem)
		}
	}
}

// Rule: the warm path's stamp record vouches only for the checkout exactly
// as recorded: a deleted file is seen without a full check's cost.
func TestStampsSeeADeletion(t *testing.T) {
	g, s, co := newCheckout(t)
	ctx := context.Background()
	time.Sleep(2 * racyWindow) // let the record be written
	if f := g.Check(ctx, s, Fast); f.Verdict != Healthy {
		t.Fatalf("fresh: %v %s", f.Verdict, f.Problem)
	}
	if f := g.Check(ctx, s, Fast); !f.Fast {
		t.Fatal("the record was not used")
	}
	os.Remove(filepath.Join(co, "src/lib.rs"))
	if f := g.Check(ctx, s, Fast); f.Verdict != Broken {
		t.Fatalf("after a deletion: %v (fast %v)", f.Verdict, f.Fast)
	}
}
