package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers for tests that run real processes as real uids: a group made for
// the test, a non-root user in it, and a toolchain that user can reach.

// sharedGroup creates a group for one test (csi10g...) and removes it after.
func sharedGroup(t *testing.T) (name string, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a group and run as other uids")
	}
	name = fmt.Sprintf("csi10g%d%04d", os.Getpid()%100000, rand.IntN(10000))
	mustRun(t, "groupadd", name)
	t.Cleanup(func() { shadowRun("groupdel", name) })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ = strconv.Atoi(g.Gid)
	return name, gid
}

// member is a non-root runner uid: a host user with a private primary group
// of its own, and the shared group as a supplementary one when inGroup.
type member struct {
	Name     string
	Uid, Gid int
	Groups   []uint32
}

func newMember(t *testing.T, sharedGid int, inGroup bool) *member {
	t.Helper()
	name := fmt.Sprintf("csi10u%d%04d", os.Getpid()%100000, rand.IntN(10000))
	mustRun(t, "useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name)
	t.Cleanup(func() {
		shadowRun("userdel", name)
		shadowRun("groupdel", name)
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{Name: name}
	m.Uid, _ = strconv.Atoi(u.Uid)
	m.Gid, _ = strconv.Atoi(u.Gid)
	if inGroup {
		m.Groups = []uint32{uint32(sharedGid)}
	}
	return m
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := shadowRun(name, args...); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// shadowRun runs a user or group tool. Other tests on the machine lock
// /etc/passwd and /etc/group too, and a runner's lock holder may outlive
// its cargo by a moment: both are retried for a while.
func shadowRun(name string, args ...string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		out, err := exec.Command(name, args...).CombinedOutput()
		busy := strings.Contains(string(out), "lock") || strings.Contains(string(out), "used by process")
		if err == nil || !busy || attempt == 50 {
			return out, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var (
	toolchainOnce sync.Once
	toolchainDir  string
	toolchainErr  error
)

// memberToolchain is the real toolchain (cargo, rustc, their libraries)
// hard-linked into the test's 0755 bin directory: the rustup toolchain
// lives under /root, which other uids cannot enter.
func memberToolchain(t *testing.T) string {
	t.Helper()
	toolchainOnce.Do(func() {
		which, err := exec.Command("rustup", "which", "cargo").Output()
		real := strings.TrimSpace(string(which))
		if err != nil {
			real, err = filepath.EvalSymlinks(realCargo)
			if err != nil {
				toolchainErr = err
				return
			}
		}
		src := filepath.Dir(filepath.Dir(real))
		toolchainDir = filepath.Join(filepath.Dir(binDir), "toolchain")
		os.MkdirAll(toolchainDir, 0o755)
		for _, sub := range []string{"bin", "lib", "libexec"} {
			if _, err := os.Stat(filepath.Join(src, sub)); err != nil {
				continue
			}
			if out, err := exec.Command("cp", "-al", filepath.Join(src, sub), toolchainDir).CombinedOutput(); err != nil {
				toolchainErr = fmt.Errorf("cp -al %s: %v: %s", sub, err, out)
				return
			}
		}
	})
	if toolchainErr != nil {
		t.Fatalf("a toolchain other uids can run: %v", toolchainErr)
	}
	return toolchainDir
}

// reachable opens every directory from dir up to the temp root to other
// uids (t.TempDir makes them 0700).
func reachable(dir string) {
	for d := dir; d != "/" && d != filepath.Clean(os.TempDir()); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
}

// memberHome is a CARGO_HOME owned by m whose registry/ is a symlink to
// shared (a non-root runner cannot bind-mount it).
func (w *World) memberHome(m *member, shared string) string {
	w.t.Helper()
	w.homes++
	h := filepath.Join(w.Root, fmt.Sprintf("member-home%d", w.homes))
	writeFile(w.t, filepath.Join(h, "config.toml"), w.Reg.CargoConfig())
	if err := os.Symlink(shared, filepath.Join(h, "registry")); err != nil {
		w.t.Fatal(err)
	}
	w.chownTree(h, m)
	reachable(h)
	return h
}

// memberWorkspace is m's checkout of the workspace.
func (w *World) memberWorkspace(m *member) string {
	w.t.Helper()
	dir := w.Workspace(1000 + w.homes)
	w.homes++
	w.chownTree(dir, m)
	return dir
}

func (w *World) chownTree(dir string, m *member) {
	w.t.Helper()
	mustRun(w.t, "chown", "-hR", fmt.Sprintf("%d:%d", m.Uid, m.Gid), dir)
}

// memberEnv is a runner's environment as m: the toolchain m can reach, and
// the shim first on PATH when viaShim.
func (w *World) memberEnv(m *member, home string, viaShim bool, extra ...string) []string {
	tc := memberToolchain(w.t)
	path := filepath.Join(tc, "bin") + ":/usr/local/bin:/usr/bin:/bin"
	if viaShim {
		path = binDir + ":" + path
	}
	env := w.Env(home, viaShim, "HOME="+home, "PATH="+path, "CARGO_SHIM_REAL_CARGO="+filepath.Join(tc, "bin", "cargo"),
		"RUSTC="+filepath.Join(tc, "bin", "rustc"))
	return append(env, extra...)
}

// CargoAs runs cargo as m in dir: through the shim, or plain.
func (w *World) CargoAs(m *member, dir, home string, viaShim bool, args []string, extra ...string) Result {
	w.t.Helper()
	bin := filepath.Join(memberToolchain(w.t), "bin", "cargo")
	if viaShim {
		bin = filepath.Join(binDir, "cargo")
	}
	return w.runAs(m, bin, dir, w.memberEnv(m, home, viaShim, extra...), args)
}

// AdminAs runs cargo-shim as m against the world's registry.
func (w *World) AdminAs(m *member, home string, args ...string) Result {
	w.t.Helper()
	env := append(w.memberEnv(m, home, true), "CARGO_SHIM_REGISTRY="+w.Shared)
	return w.runAs(m, filepath.Join(binDir, "cargo-shim"), w.Root, env, args)
}

func (w *World) runAs(m *member, bin, dir string, env, args []string) Result {
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{
		Uid: uint32(m.Uid), Gid: uint32(m.Gid), Groups: m.Groups,
	}}
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String(), Err: err, Code: -1}
	if cmd.ProcessState != nil {
		res.Code = cmd.ProcessState.ExitCode()
	}
	return res
}
