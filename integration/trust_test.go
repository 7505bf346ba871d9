package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cargo-shim/cargo-shim/safefs/safefstest"
	"github.com/cargo-shim/cargo-shim/shim/store/storetest"
)

// Issue 17: root builds only the bytes Cargo.lock names. The only sources
// of truth for a crate's bytes are the workspace's Cargo.lock and records
// no less-trusted uid could have written; a tarball, a plan record or an
// index-cache entry another uid wrote may make the shim look closer, never
// replace anything. Each test plays one attack as uid 65534 and then
// checks, after every root run: root's extraction is byte for byte the
// genuine tarball's, nothing outside the registry changed (a decoy beside
// it), and the run ended (each runs with a lock timeout).

// rootLockTimeout bounds every root run's waits: a run that hangs is a
// failure of the run, not of the test's patience.
const rootLockTimeout = "CARGO_SHIM_LOCK_TIMEOUT=60s"

// trustWorld is a hostile world with the genuine .crate of one crate kept
// aside and a rewritten one (other code, another size) the attacker can copy.
type trustWorld struct {
	*World
	decoy   string
	snap    safefstest.Tree
	crate   string // <name>-<version> of the attacked crate
	genuine map[string]string
	evil    string // path of the rewritten .crate, readable by the attacker
}

func newTrustWorld(t *testing.T, w *World, crate, file, code string) *trustWorld {
	t.Helper()
	tw := &trustWorld{World: w, crate: crate}
	tw.decoy, tw.snap = w.decoy()
	data, err := os.ReadFile(w.Tarball(crate))
	if err != nil {
		t.Fatal(err)
	}
	entries := tarEntries(t, data)
	tw.genuine = map[string]string{}
	var evil []storetest.Entry
	for _, e := range entries {
		if e.Type == tar.TypeReg {
			tw.genuine[strings.TrimPrefix(e.Name, crate+"/")] = e.Body
		}
		if e.Name == crate+"/"+file {
			e.Body = code
		}
		evil = append(evil, e)
	}
	tw.evil = filepath.Join(w.Root, "csi17-evil.crate")
	if err := os.WriteFile(tw.evil, storetest.Tarball(evil), 0o644); err != nil {
		t.Fatal(err)
	}
	return tw
}

func tarEntries(t *testing.T, data []byte) []storetest.Entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []storetest.Entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, storetest.Entry{Name: hdr.Name, Type: hdr.Typeflag, Body: string(body), Mode: hdr.Mode})
	}
}

// attackWith is World.attack with more variables for the script.
func (w *World) attackWith(script string, env ...string) {
	w.t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = w.Shared
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "R=" + w.Regdir}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attacker, Gid: attacker}}
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("attacker (uid %d): %v: %s", attacker, err, out)
	}
}

// swapTarball: the attacker replaces the crate's .crate with its own file.
func (tw *trustWorld) swapTarball() {
	tw.t.Helper()
	tw.attackWith(`rm -f cache/$R/$C.crate; cp "$EVIL" cache/$R/$C.crate`, "C="+tw.crate, "EVIL="+tw.evil)
}

// assertGenuine: the extraction holds the genuine tarball's files, byte
// for byte, and no other (but cargo's marker); nothing outside changed.
func (tw *trustWorld) assertGenuine(after string) {
	tw.t.Helper()
	dir := tw.Extraction(tw.crate)
	seen := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".cargo-ok" {
			return nil
		}
		want, ok := tw.genuine[rel]
		got, rerr := os.ReadFile(p)
		switch {
		case !ok:
			tw.t.Errorf("after %s: %s is in the extraction, not in the genuine tarball", after, rel)
		case rerr != nil || string(got) != want:
			tw.t.Errorf("after %s: %s is not the genuine tarball's (%q)", after, rel, got)
		default:
			seen++
		}
		return nil
	})
	if seen != len(tw.genuine) {
		tw.t.Errorf("after %s: %d of the genuine tarball's %d files in the extraction", after, seen, len(tw.genuine))
	}
	safefstest.Unchanged(func(f string, a ...any) { tw.t.Errorf(after+": outside the registry: "+f, a...) }, tw.decoy, tw.snap)
}

// rootShim runs the drop-in as root in dir with a cargo that does nothing:
// all that happens is the shim's own work.
func (w *World) rootShim(dir string, args ...string) Result {
	w.t.Helper()
	r := w.Start(dir, w.Home(), true, args, "CARGO_SHIM_REAL_CARGO=/bin/true", rootLockTimeout).Wait()
	if r.Code != 0 {
		w.t.Errorf("root shim %v: exit %d, want 0: %s", args, r.Code, r)
	}
	return r
}

// rootAdmin runs cargo-shim as root with the lock timeout.
func (w *World) rootAdmin(args ...string) Result {
	w.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "cargo-shim"), args...)
	cmd.Env = append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared, rootLockTimeout)
	out, err := cmd.CombinedOutput()
	return Result{Stdout: string(out), Code: cmd.ProcessState.ExitCode(), Err: err}
}

// rootBuild is a real root build with the genuine Cargo.lock, through the
// shim: the app must print what the genuine crates make it print.
func (tw *trustWorld) rootBuild() Result {
	tw.t.Helper()
	home := tw.Home()
	r := tw.Cargo(home, true, []string{"build"}, rootLockTimeout)
	if r.Code != 0 {
		tw.t.Fatalf("root build with the genuine Cargo.lock: %s", r)
	}
	if got := tw.RunApp(home); got != wantApp {
		tw.t.Errorf("app printed %q, want %q: the attacker's code was compiled", got, wantApp)
	}
	return r
}

const evilFlat = "pub fn flat() -> u32 { 1000 } // the attacker's, longer than the genuine one\n"

// A .crate rewritten by the attacker (it owns the file) is never unpacked
// over root's extraction by a run that has no trusted checksum for it: a
// build without Cargo.lock, `cargo-shim repair` over the whole registry.
// The difference is reported with the crate and the path.
func TestTrustRewrittenCrateNoChecksum(t *testing.T) {
	for _, v := range []struct {
		name string
		run  func(w *World) Result
	}{
		{"build-without-Cargo.lock", func(w *World) Result {
			dir := w.Workspace(1)
			os.Remove(filepath.Join(dir, "Cargo.lock"))
			return w.rootShim(dir, "build")
		}},
		{"repair", func(w *World) Result { return w.rootAdmin("repair") }},
	} {
		t.Run(v.name, func(t *testing.T) {
			tw := newTrustWorld(t, hostileWorld(t), "flat-1.0.0", "lib.rs", evilFlat)
			tw.swapTarball()
			r := v.run(tw.World)
			tw.assertGenuine(v.name)
			if strings.Contains(r.Stderr+r.Stdout, "Repairing flat") {
				t.Errorf("%s re-extracted the rewritten tarball:\n%s", v.name, r)
			}
			if !strings.Contains(r.Stderr+r.Stdout, "lib.rs") {
				t.Errorf("%s did not name the file that differs:\n%s", v.name, r)
			}
			tw.rootBuild()
			tw.assertGenuine("the build with Cargo.lock")
		})
	}
}

// A plan record forged with empty checksums (the attacker made the plan
// directory before root's first run, and the tarball is its own) must not
// make root's build with the genuine Cargo.lock unpack the attacker's .crate.
func TestTrustForgedPlanRecord(t *testing.T) {
	w := hostileWorld(t)
	w.mustAttack(`mkdir -m 777 -p .cargo-shim/state/$R .cargo-shim/state/plans`, "")
	tw := newTrustWorld(t, w, "flat-1.0.0", "lib.rs", evilFlat)
	w.rootShim(w.Workspace(1), "build")
	plans, _ := filepath.Glob(filepath.Join(w.Shared, ".cargo-shim", "state", "plans", "*"))
	if len(plans) != 1 {
		t.Fatalf("plan records: %v", plans)
	}
	rec, _ := os.ReadFile(plans[0])
	for _, sum := range w.Checksum {
		rec = bytes.ReplaceAll(rec, append([]byte{64}, sum...), []byte{0})
	}
	forged := filepath.Join(w.Root, "csi17-plan")
	os.WriteFile(forged, rec, 0o644)
	w.attackWith(`rm -f "$P"; cp "$F" "$P"`, "P="+plans[0], "F="+forged)
	tw.swapTarball()
	for n := range 2 {
		r := tw.rootBuild()
		tw.assertGenuine(fmt.Sprintf("root build %d", n+1))
		if strings.Contains(r.Stderr, "Repairing flat") {
			t.Errorf("build %d re-extracted the rewritten tarball:\n%s", n+1, r.Stderr)
		}
	}
}

// A plan record of 20,000 cold crates forged for a one-crate Cargo.lock:
// root's run ends, takes a few locks, and creates few lock files.
func TestTrustForgedHugePlan(t *testing.T) {
	w := hostileWorld(t)
	one := filepath.Join(w.Root, "one")
	writeFile(t, filepath.Join(one, "Cargo.toml"), "[package]\nname = \"one\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nflat = \"=1.0.0\"\n")
	writeFile(t, filepath.Join(one, "src", "lib.rs"), "")
	h := filepath.Join(w.Root, "lock-home")
	writeFile(t, filepath.Join(h, "config.toml"), w.Reg.CargoConfig())
	if r := w.Start(one, h, false, []string{"generate-lockfile"}).Wait(); r.Code != 0 {
		t.Fatalf("generate-lockfile: %s", r)
	}
	lock, _ := os.ReadFile(filepath.Join(one, "Cargo.lock"))
	sum := sha256.Sum256(lock)
	key := hex.EncodeToString(sum[:16])
	forged := filepath.Join(w.Root, "csi17-plan")
	os.WriteFile(forged, w.hugePlan(key, 20000), 0o644)
	w.attackWith(`mkdir -m 777 -p .cargo-shim/state/plans; cp "$F" .cargo-shim/state/plans/$K`, "F="+forged, "K="+key)
	decoy, snap := w.decoy()
	w.rootShim(one, "build")
	locks := 0
	filepath.WalkDir(filepath.Join(w.Shared, ".cargo-shim", "locks"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			locks++
		}
		return nil
	})
	if locks > 10 {
		t.Errorf("%d lock files created for a one-crate Cargo.lock", locks)
	}
	safefstest.Unchanged(t.Errorf, decoy, snap)
}

// hugePlan encodes a plan record (format "cargo-shim-plan 2", plan.go) as
// the attacker would: the registry's real top stamps (anyone may lstat
// them), its one regdir, n cold crates.
func (w *World) hugePlan(key string, n int) []byte {
	var b bytes.Buffer
	u64 := func(v uint64) { binary.Write(&b, binary.LittleEndian, v) }
	uv := func(v int) { b.Write(binary.AppendUvarint(nil, uint64(v))) }
	str := func(s string) { uv(len(s)); b.WriteString(s) }
	b.WriteString("cargo-shim-plan 2\n")
	str(key)
	for _, d := range []string{"src", "cache", "index"} {
		var st syscall.Stat_t
		syscall.Lstat(filepath.Join(w.Shared, d), &st)
		u64(st.Ino)
		u64(0)
		u64(uint64(st.Mtim.Nano()))
		u64(uint64(st.Ctim.Nano()))
	}
	uv(1)
	str(w.Regdir)
	b.WriteByte(1)
	uv(n)
	for k := range n {
		str(fmt.Sprintf("forged%05d", k))
		str("1.0.0")
		str("")
	}
	uv(n)
	for k := range n {
		uv(k)
	}
	uv(0)
	return b.Bytes()
}

// chmodTree makes every directory under p writable by every uid, as on a
// fleet whose registry is world-writable.
func chmodTree(t *testing.T, p string) {
	t.Helper()
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o777)
		}
		return err
	})
}

// `cargo install eval-tool` as root where the attacker rewrote the tool's
// index-cache entry with "cksum":"" and its .crate: root's extraction of
// the tool stays the genuine one, and so does the tool it installs.
func TestTrustInstallEmptyIndexChecksum(t *testing.T) {
	w := NewToolWorld(t)
	if _, ok, why := w.Install(installForms[0], true); !ok {
		t.Fatalf("root's first install: %s", why)
	}
	w.Regdir = w.findRegdir()
	for d := w.Root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	for _, d := range []string{w.Shared, filepath.Join(w.Shared, "src", w.Regdir), filepath.Join(w.Shared, "cache", w.Regdir)} {
		os.Chmod(d, 0o777)
	}
	chmodTree(t, filepath.Join(w.Shared, "index", w.Regdir, ".cache"))
	tw := newTrustWorld(t, w.World, toolDir, "src/main.rs", "fn main() { println!(\"the attacker's tool\"); }\n")
	idx := filepath.Join(w.Shared, "index", w.Regdir, ".cache", "ev", "al", "eval-tool")
	w.attackWith(`sed 's/"cksum":"[0-9a-f]*"/"cksum":""/g' "$I" > "$I.new"; mv "$I.new" "$I"`, "I="+idx)
	tw.swapTarball()
	r, ok, why := w.Install(installForms[0], true, rootLockTimeout)
	if !ok {
		t.Errorf("root's install after the attack: %s\n%s", why, r)
	}
	tw.assertGenuine("root's install")
}

// A 64 MiB index-cache entry of NUL bytes (after cargo's version byte):
// root's `cargo install eval-tool` reads it as a bounded stream, refuses
// it, and ends with its peak memory far below the file's size x fields.
func TestTrustIndexCacheOfNULs(t *testing.T) {
	w := hostileWorld(t)
	chmodTree(t, filepath.Join(w.Shared, "index", w.Regdir))
	decoy, snap := w.decoy()
	w.attackWith(`mkdir -p index/$R/.cache/ev/al; f=index/$R/.cache/ev/al/eval-tool
		printf '\003' > $f; head -c 67108863 /dev/zero >> $f`)
	p := w.Start(w.Root, w.Home(), true, []string{"install", "eval-tool"}, "CARGO_SHIM_REAL_CARGO=/bin/true", rootLockTimeout)
	r := p.Wait()
	if r.Code != 0 {
		t.Errorf("root's cargo install: exit %d: %s", r.Code, r)
	}
	// ru_maxrss survives exec: it is the shim's peak as much as /bin/true's.
	peak := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("peak RSS of root's run: %d MiB", peak>>20)
	if peak > 256<<20 {
		t.Errorf("peak RSS %d MiB reading a 64 MiB index-cache entry, want at most 256 MiB", peak>>20)
	}
	safefstest.Unchanged(t.Errorf, decoy, snap)
}

// An extraction the attacker owns (it re-made root's extraction as its own
// copy, identical at first) is compared with the verified tarball before
// root trusts it; a later in-place rewrite of one file (same size, no
// directory stamp moves) is caught on root's next run, which unpacks the
// verified tarball again: root never compiles the attacker's lib.rs.
func TestTrustAttackerOwnedExtraction(t *testing.T) {
	tw := newTrustWorld(t, hostileWorld(t), "flat-1.0.0", "lib.rs", evilFlat)
	tw.attackWith(`cd src/$R; mv $C .csi17-old; cp -r .csi17-old $C`, "C="+tw.crate)
	// Twice: a record made right after the copy is too new to trust (the
	// racy rule), and the second one is what a warm run relies on.
	for range 2 {
		tw.rootBuild()
		tw.assertGenuine("root's build on the attacker's copy")
	}
	genuine := "pub fn flat() -> u32 { 1 }\n"
	evil := "pub fn flat() -> u32 { 9 }\n" // same size: only the content differs
	if tw.genuine["lib.rs"] != genuine {
		t.Fatalf("fixture: lib.rs is %q", tw.genuine["lib.rs"])
	}
	tw.attackWith(`printf '%s' "$E" > src/$R/$C/lib.rs`, "C="+tw.crate, "E="+evil)
	r := tw.rootBuild()
	tw.assertGenuine("root's build after the in-place rewrite")
	if !strings.Contains(r.Stderr, "Repairing flat v1.0.0 (lib.rs differs from the tarball)") {
		t.Errorf("the rewrite was not reported:\n%s", r.Stderr)
	}
}
