package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
	"github.com/cargo-shim/cargo-shim/lockfile"
)

// GitWorld is a git daemon on 127.0.0.1 serving five dependencies (a
// branch, a rev, an annotated tag, one with a build.rs, one with a
// submodule), a workspace using them with its Cargo.lock, and one shared
// git/ directory that every runner home links to.
type GitWorld struct {
	t      *testing.T
	Root   string
	Port   int
	Work   string // the workspace, locked
	Shared string // the shared git/ directory
	homes  int
	hosts  []string // the shared git/ through each multihost mount
	gitEnv []string
	// Env is added to every cargo run's environment.
	Env []string
}

// gitDeps are the workspace's dependencies: name, and how Cargo.toml names
// the revision.
var gitDeps = []struct{ name, spec string }{
	{"gbranch", `branch = "main"`},
	{"grev", `rev = "%s"`},
	{"gtag", `tag = "v1.0.0"`},
	{"gbuild", `branch = "main"`},
	{"gsub", `branch = "main"`},
}

func NewGitWorld(t *testing.T) *GitWorld {
	t.Helper()
	w := &GitWorld{t: t, Root: t.TempDir()}
	w.gitEnv = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(w.Root, "gitconfig"),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	writeFile(t, filepath.Join(w.Root, "gitconfig"), "[protocol \"file\"]\n\tallow = always\n[init]\n\tdefaultBranch = main\n")
	w.startDaemon()
	srv := filepath.Join(w.Root, "srv")
	w.repo(srv, "inner", map[string]string{"inner.rs": "pub fn inner() -> u32 { 7 }\n"})
	revs := map[string]string{}
	for _, d := range gitDeps {
		files := map[string]string{
			"Cargo.toml": fmt.Sprintf("[package]\nname = %q\nversion = \"0.1.0\"\nedition = \"2021\"\n", d.name),
			"src/lib.rs": fmt.Sprintf("pub fn %s() -> u32 { 1 }\n", d.name),
		}
		switch d.name {
		case "gbuild":
			files["build.rs"] = "fn main() { std::fs::write(std::path::Path::new(&std::env::var(\"OUT_DIR\").unwrap()).join(\"gen.rs\"), \"pub fn gen() -> u32 { 3 }\").unwrap(); }\n"
			files["src/lib.rs"] = "include!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));\npub fn gbuild() -> u32 { gen() }\n"
		case "gsub":
			files["src/lib.rs"] = "#[path = \"../inner/inner.rs\"]\nmod inner;\npub fn gsub() -> u32 { inner::inner() }\n"
		}
		revs[d.name] = w.repo(srv, d.name, files)
		if d.name == "gsub" {
			w.git(filepath.Join(srv, "gsub"), "submodule", "add", "-q", w.URL("inner"), "inner")
			w.git(filepath.Join(srv, "gsub"), "commit", "-qm", "submodule")
		}
		if d.name == "gtag" {
			w.git(filepath.Join(srv, "gtag"), "tag", "-a", "-m", "v1", "v1.0.0")
			// A later commit: the tag, not the branch, is what is locked.
			writeFile(t, filepath.Join(srv, "gtag", "later.txt"), "later\n")
			w.git(filepath.Join(srv, "gtag"), "add", "-A")
			w.git(filepath.Join(srv, "gtag"), "commit", "-qm", "later")
		}
	}
	w.Work = filepath.Join(w.Root, "work")
	var deps, calls strings.Builder
	for _, d := range gitDeps {
		spec := d.spec
		if strings.Contains(spec, "%s") {
			spec = fmt.Sprintf(spec, revs[d.name])
		}
		fmt.Fprintf(&deps, "%s = { git = %q, %s }\n", d.name, w.URL(d.name), spec)
		fmt.Fprintf(&calls, "    n += %s::%s();\n", d.name, d.name)
	}
	writeFile(t, filepath.Join(w.Work, "Cargo.toml"), "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n"+deps.String())
	writeFile(t, filepath.Join(w.Work, "src/main.rs"), "fn main() {\n    let mut n = 0;\n"+calls.String()+"    println!(\"{n}\");\n}\n")
	lockHome := filepath.Join(w.Root, "lock-home")
	if r := loopback.Start(realCargo, w.Work, loopback.CargoEnv(lockHome, ""), []string{"generate-lockfile"}).Wait(); r.Code != 0 {
		t.Fatalf("generate-lockfile: %s", r)
	}
	w.Shared = filepath.Join(w.Root, "shared-git")
	w.gitOnHosts()
	if err := os.MkdirAll(w.Shared, 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// gitOnHosts moves the shared git/ onto the multihost mounts, when there
// are any (see MultihostEnv): runner homes then reach it, in turn, through
// mount A or mount B.
func (w *GitWorld) gitOnHosts() {
	mounts := multihostMounts()
	if len(mounts) == 0 {
		return
	}
	name := filepath.Base(w.Root) + "-" + strconv.Itoa(os.Getpid())
	for _, m := range mounts {
		w.hosts = append(w.hosts, filepath.Join(m, "csi11-git-"+name, "git"))
	}
	w.Shared = w.hosts[0]
	top := filepath.Dir(w.Shared)
	w.t.Cleanup(func() { os.RemoveAll(top) })
}

// NewWarmGitWorld is a GitWorld with one runner home and workspace that
// have built once through the shim (every db and checkout there).
func NewWarmGitWorld(t *testing.T) (*GitWorld, string, string) {
	t.Helper()
	w := NewGitWorld(t)
	home, work := w.Home(), w.Workspace()
	if r := w.Build(work, home, true).Wait(); r.Code != 0 {
		t.Fatalf("warm-up: %s", r)
	}
	return w, home, work
}

func (w *GitWorld) URL(name string) string { return fmt.Sprintf("git://127.0.0.1:%d/%s", w.Port, name) }

func (w *GitWorld) git(dir string, args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, w.gitEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// repo makes a repository with files committed on main; it returns the commit.
func (w *GitWorld) repo(srv, name string, files map[string]string) string {
	dir := filepath.Join(srv, name)
	for p, c := range files {
		writeFile(w.t, filepath.Join(dir, p), c)
	}
	w.git(dir, "init", "-q")
	w.git(dir, "add", "-A")
	w.git(dir, "commit", "-qm", "first")
	return w.git(dir, "rev-parse", "HEAD")
}

// startDaemon serves srv on a free port until the test ends.
func (w *GitWorld) startDaemon() {
	srv := filepath.Join(w.Root, "srv")
	if err := os.MkdirAll(srv, 0o755); err != nil {
		w.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	w.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--base-path="+srv, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", w.Port), srv)
	cmd.Env = w.gitEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.Port))
		if err == nil {
			c.Close()
			return
		}
		if i == 500 {
			w.t.Fatalf("git daemon did not listen: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Home is a new runner home whose git/ is the shared directory (a symlink,
// as a bind mount would be).
func (w *GitWorld) Home() string {
	w.t.Helper()
	w.homes++
	h := filepath.Join(w.Root, fmt.Sprintf("home-%d", w.homes))
	if err := os.MkdirAll(h, 0o755); err != nil {
		w.t.Fatal(err)
	}
	shared := w.Shared
	if len(w.hosts) > 0 {
		shared = w.hosts[w.homes%len(w.hosts)]
	}
	if err := os.Symlink(shared, filepath.Join(h, "git")); err != nil {
		w.t.Fatal(err)
	}
	return h
}

// Workspace copies the locked workspace for one runner.
func (w *GitWorld) Workspace() string {
	w.t.Helper()
	w.homes++
	dst := filepath.Join(w.Root, fmt.Sprintf("work-%d", w.homes))
	if err := loopback.CopyDir(w.Work, dst); err != nil {
		w.t.Fatal(err)
	}
	return dst
}

// Build runs `cargo build` (plus args) in dir with home, through the shim or
// plain, into a fresh target directory (so that the dependencies are
// compiled from the checkouts, as on a fresh CI runner).
func (w *GitWorld) Build(dir, home string, viaShim bool, args ...string) *loopback.Proc {
	bin, shimDir := realCargo, ""
	if viaShim {
		bin, shimDir = filepath.Join(binDir, "cargo"), binDir
	}
	target, err := os.MkdirTemp(w.Root, "target-")
	if err != nil {
		w.t.Fatal(err)
	}
	env := loopback.CargoEnv(home, shimDir, append([]string{"CARGO_TARGET_DIR=" + target}, w.Env...)...)
	return loopback.Start(bin, dir, env, append([]string{"build"}, args...))
}

// Checkout is the shared checkout of dependency name (the only one).
func (w *GitWorld) Checkout(name string) string {
	w.t.Helper()
	m, _ := filepath.Glob(filepath.Join(w.Shared, "checkouts", name+"-*", "*"))
	if len(m) != 1 {
		w.t.Fatalf("checkouts of %s: %v", name, m)
	}
	return m[0]
}

// concurrently runs n builds at once (each its own home and workspace) and
// returns how many failed, logging each failure's last lines.
func (w *GitWorld) concurrently(n int, viaShim bool) int {
	procs := make([]*loopback.Proc, n)
	for i := range procs {
		procs[i] = w.Build(w.Workspace(), w.Home(), viaShim)
	}
	failed := 0
	for _, p := range procs {
		if r := p.Wait(); r.Code != 0 {
			failed++
			w.t.Logf("shim=%v failed: %s", viaShim, lastLines(r.Stderr, 4))
		}
	}
	return failed
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// Rule: runners sharing only git/ start cold at once and every build
// passes: each db is fetched once, under the shim's exclusive locks, and
// no runner deletes or re-creates a checkout another one is reading.
// Plain cargo in the same setting is measured and logged.
func TestGitColdStartSharedGit(t *testing.T) {
	const runners, rounds = 4, 2
	plain, shim := 0, 0
	for round := 0; round < rounds; round++ {
		w := NewGitWorld(t)
		plain += w.concurrently(runners, false)
		w2 := NewGitWorld(t)
		shim += w2.concurrently(runners, true)
	}
	t.Logf("cold start, %d runners x %d rounds: plain cargo failed %d of %d, through the shim %d of %d", runners, rounds, plain, runners*rounds, shim, runners*rounds)
	if shim != 0 {
		t.Errorf("%d cold builds through the shim failed", shim)
	}
}

// gitDamages are the damage kinds cargo does not notice (its checkout has
// .cargo-ok and HEAD at the locked commit) plus an interrupted checkout.
var gitDamages = []struct {
	name string
	do   func(w *GitWorld) error
}{
	{"lib.rs deleted", func(w *GitWorld) error { return os.Remove(filepath.Join(w.Checkout("gbranch"), "src/lib.rs")) }},
	{"src/ deleted", func(w *GitWorld) error { return os.RemoveAll(filepath.Join(w.Checkout("grev"), "src")) }},
	{"build.rs deleted", func(w *GitWorld) error { return os.Remove(filepath.Join(w.Checkout("gbuild"), "build.rs")) }},
	{"Cargo.toml deleted", func(w *GitWorld) error { return os.Remove(filepath.Join(w.Checkout("gtag"), "Cargo.toml")) }},
	{"worktree file truncated", func(w *GitWorld) error {
		return os.Truncate(filepath.Join(w.Checkout("gbranch"), "src/lib.rs"), 5)
	}},
	{".cargo-ok kept, files missing", func(w *GitWorld) error {
		co := w.Checkout("gsub")
		os.Remove(filepath.Join(co, "Cargo.toml"))
		return os.RemoveAll(filepath.Join(co, "src"))
	}},
	{"submodule file deleted", func(w *GitWorld) error { return os.Remove(filepath.Join(w.Checkout("gsub"), "inner/inner.rs")) }},
	{"interrupted checkout (.cargo-ok missing, lib.rs gone)", func(w *GitWorld) error {
		co := w.Checkout("gtag")
		os.Remove(filepath.Join(co, "src/lib.rs"))
		return os.Remove(filepath.Join(co, ".cargo-ok"))
	}},
}

// Rule: a checkout damaged between runs (a file deleted or truncated, a
// submodule's file gone, .cargo-ok over missing files) is rebuilt from
// the db before cargo runs, so the build passes; plain cargo, which trusts
// .cargo-ok and HEAD, is measured on the same damage in the same run.
func TestGitDamageRepaired(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	plainFailed, shimFailed := 0, 0
	for _, d := range gitDamages {
		if err := d.do(w); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		plain := w.Build(work, home, false).Wait()
		if plain.Code != 0 {
			plainFailed++
		}
		// Plain cargo may have fixed what it could: damage again.
		_ = d.do(w)
		r := w.Build(work, home, true).Wait()
		if r.Code != 0 {
			shimFailed++
			t.Errorf("%s: build through the shim failed: %s", d.name, r)
		}
		t.Logf("%s: plain cargo exit %d (%s); shim exit %d", d.name, plain.Code, lastLines(plain.Stderr, 1), r.Code)
	}
	t.Logf("damage: plain cargo failed %d of %d, through the shim %d of %d", plainFailed, len(gitDamages), shimFailed, len(gitDamages))
}

// Rule: with the commit in the db, an --offline build passes through the
// shim whatever happened to the checkout: it is rebuilt without network.
func TestGitOfflineRepairFromDB(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	if err := os.Remove(filepath.Join(w.Checkout("gbranch"), "src/lib.rs")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(w.Checkout("gsub")); err != nil {
		t.Fatal(err)
	}
	plain := w.Build(work, home, false, "--offline").Wait()
	// A registry beside git/: the git locks are pinned with the registry's
	// plan (an empty one here) instead of alone.
	if err := os.MkdirAll(filepath.Join(home, "registry", "index"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := w.Build(work, home, true, "--offline").Wait()
	t.Logf("offline after damage: plain cargo exit %d (%s)", plain.Code, lastLines(plain.Stderr, 1))
	if r.Code != 0 {
		t.Fatalf("offline build through the shim: %s", r)
	}
}

// Rule: runners killed at any point of a cold fetch or checkout leave
// nothing that fails the next runs: all of them rerun and pass. Plain
// cargo in the same setting is measured and logged.
func TestGitKilledMidCheckoutThenRerun(t *testing.T) {
	plain := killThenRerun(t, NewGitWorld(t), false)
	shim := killThenRerun(t, NewGitWorld(t), true)
	t.Logf("kills then rerun: plain cargo %d of %d reruns failed, through the shim %d of %d", plain, len(killDelays), shim, len(killDelays))
	if shim != 0 {
		t.Errorf("%d reruns through the shim failed", shim)
	}
}

var killDelays = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond}

// killThenRerun starts one cold build per delay, kills each (its whole
// process group) after its delay, then reruns them all at once; it returns
// how many reruns failed.
func killThenRerun(t *testing.T, w *GitWorld, viaShim bool) int {
	var wg sync.WaitGroup
	type runner struct{ home, work string }
	var rs []runner
	for i, delay := range killDelays {
		rs = append(rs, runner{w.Home(), w.Workspace()})
		p := w.Build(rs[i].work, rs[i].home, viaShim)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			p.KillGroup()
			p.Wait()
		}()
	}
	wg.Wait()
	procs := make([]*loopback.Proc, len(rs))
	for i, r := range rs {
		procs[i] = w.Build(r.work, r.home, viaShim)
	}
	failed := 0
	for _, p := range procs {
		if r := p.Wait(); r.Code != 0 {
			failed++
			t.Logf("shim=%v: rerun after kills failed: %s", viaShim, lastLines(r.Stderr, 4))
		}
	}
	return failed
}

// Rule: the admin command covers git checkouts: verify reports a damaged
// checkout (exit 1) and changes nothing; repair rebuilds it from its db
// under its lock; then verify passes and plain cargo builds.
func TestGitAdminVerifyRepair(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	// The admin command works on a registry; the git directory beside it
	// is covered too.
	if err := os.MkdirAll(filepath.Join(home, "registry", ".cargo-shim"), 0o755); err != nil {
		t.Fatal(err)
	}
	admin := func(args ...string) loopback.Result {
		return loopback.Start(filepath.Join(binDir, "cargo-shim"), work, loopback.CargoEnv(home, ""), args).Wait()
	}
	lib := filepath.Join(w.Checkout("gbranch"), "src/lib.rs")
	if err := os.Remove(lib); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(w.Checkout("gbuild"), "build.rs")); err != nil {
		t.Fatal(err)
	}
	r := admin("verify")
	if r.Code != 1 || !strings.Contains(r.Stdout, "git gbranch-") || !strings.Contains(r.Stdout, "git gbuild-") {
		t.Fatalf("verify after damage: %s", r)
	}
	t.Logf("verify after damage:\n%s", r.Stdout)
	if _, err := os.Lstat(lib); err == nil {
		t.Fatal("verify changed the checkout")
	}
	if r := admin("status"); !strings.Contains(r.Stdout, "git:") {
		t.Errorf("status has no git line: %s", r)
	}
	r = admin("repair")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Rebuilt") {
		t.Fatalf("repair: %s", r)
	}
	t.Logf("repair:\n%s", r.Stdout)
	if r := admin("verify", "--lockfile", filepath.Join(work, "Cargo.lock")); r.Code != 0 {
		t.Fatalf("verify after repair: %s", r)
	}
	if r := w.Build(work, home, false).Wait(); r.Code != 0 {
		t.Fatalf("plain cargo after repair: %s", r)
	}
}

// Rule: a checkout a build holds (its lock shared) is never changed: a
// runner that finds it damaged waits for the lock, and rebuilds it only
// once the build is done.
func TestGitRepairWaitsForTheBuildUsingIt(t *testing.T) {
	w, _, _ := NewWarmGitWorld(t)
	held := w.HoldCheckout("gbranch")
	lib := filepath.Join(w.Checkout("gbranch"), "src/lib.rs")
	if err := os.Remove(lib); err != nil {
		t.Fatal(err)
	}
	p := w.Build(w.Workspace(), w.Home(), true)
	time.Sleep(3 * time.Second) // the other runner is at work; whatever it does, it must not touch the checkout
	if _, err := os.Lstat(lib); err == nil {
		t.Fatal("the checkout in use was changed")
	}
	held.Release()
	r := p.Wait()
	if r.Code != 0 {
		t.Fatalf("build after the lock was released: %s", r)
	}
	if _, err := os.Lstat(lib); err != nil {
		t.Fatalf("not repaired once free: %v", err)
	}
	t.Logf("waiting runner said: %s", lastLines(r.Stderr, 3))
}

// Rule: gc removes git checkouts no build has used for --max-age, never
// one a build holds (taken without waiting: kept), keeps the dbs, and a
// later build gets its checkouts back from them without network.
func TestGitGCKeepsCheckoutInUse(t *testing.T) {
	w, home, work := NewWarmGitWorld(t)
	if err := os.MkdirAll(filepath.Join(home, "registry", ".cargo-shim"), 0o755); err != nil {
		t.Fatal(err)
	}
	held := w.HoldCheckout("gbranch")
	inUse := w.Checkout("gbranch")
	gc := func(args ...string) loopback.Result {
		return loopback.Start(filepath.Join(binDir, "cargo-shim"), work, loopback.CargoEnv(home, ""), append([]string{"gc"}, args...)).Wait()
	}
	if r := gc("--max-age", "0", "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "Removable") {
		t.Fatalf("dry run: %s", r)
	}
	if m, _ := filepath.Glob(filepath.Join(w.Shared, "checkouts", "*", "*")); len(m) != len(gitDeps) {
		t.Fatalf("the dry run removed checkouts: %v", m)
	}
	r := gc("--max-age", "0")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Kept") {
		t.Fatalf("gc: %s", r)
	}
	t.Logf("gc:\n%s", r.Stdout)
	held.Release()
	m, _ := filepath.Glob(filepath.Join(w.Shared, "checkouts", "*", "*"))
	if len(m) != 1 || m[0] != inUse {
		t.Fatalf("after gc, checkouts %v; want only the one in use, %s", m, inUse)
	}
	if d, _ := filepath.Glob(filepath.Join(w.Shared, "db", "*")); len(d) < len(gitDeps) {
		t.Fatalf("gc removed dbs: %v", d)
	}
	if r := w.Build(work, home, true, "--offline").Wait(); r.Code != 0 {
		t.Fatalf("offline build after gc: %s", r)
	}
}

// HoldCheckout takes the shared lock of dependency name's checkout, as a
// running build's holder does.
func (w *GitWorld) HoldCheckout(name string) *lockfile.Lock {
	return w.holdShared(filepath.Join("checkouts", name+"-*", "*.lock"))
}
