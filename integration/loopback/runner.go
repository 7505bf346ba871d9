package loopback

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Result of one cargo run.
type Result struct {
	Stdout, Stderr string
	Code           int
	Err            error
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.Code, r.Err, r.Stdout, r.Stderr)
}

// CargoEnv is the environment of a runner: the machine's, less anything that
// would point cargo elsewhere (CARGO_*, RUST* but rustup's, proxies), with
// shimDir first on PATH when not empty.
func CargoEnv(home, shimDir string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CARGO"), strings.HasPrefix(k, "RUST") && k != "RUSTUP_HOME" && k != "RUSTUP_TOOLCHAIN",
			strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "all_proxy"), k == "PATH":
			continue
		}
		env = append(env, kv)
	}
	path := os.Getenv("PATH")
	if shimDir != "" {
		path = shimDir + string(os.PathListSeparator) + path
	}
	env = append(env, "PATH="+path, "CARGO_HOME="+home, "CARGO_TERM_COLOR=never",
		"CARGO_TARGET_DIR="+filepath.Join(home, "target"), "CARGO_INCREMENTAL=0")
	return append(env, extra...)
}

// BindMounts is true when runners reach the shared registry through a bind
// mount, as containers do: as root, where a private mount namespace can be
// made. Elsewhere a symlink stands in for it.
var BindMounts = os.Geteuid() == 0 && exec.Command("unshare", "-m", "true").Run() == nil

// sharedMarker, in a home, names the shared registry to bind-mount at
// $CARGO_HOME/registry when a runner starts.
const sharedMarker = ".loopback-shared-registry"

// NewHome makes a CARGO_HOME configured for registry r whose registry/ is the
// shared directory.
func NewHome(dir string, r *Registry, shared string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(r.CargoConfig()), 0o644); err != nil {
		return err
	}
	return SetShared(dir, shared)
}

// SetShared points a home's registry/ at shared.
func SetShared(home, shared string) error {
	reg := filepath.Join(home, "registry")
	os.Remove(reg)
	if !BindMounts {
		return os.Symlink(shared, reg)
	}
	if err := os.MkdirAll(reg, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(home, sharedMarker), []byte(shared), 0o644)
}

// wrap makes a command run with the shared registry bind-mounted into its
// home, in a mount namespace of its own (unshare execs: same pid).
func wrap(bin string, env, args []string) (string, []string) {
	if !BindMounts {
		return bin, args
	}
	home := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CARGO_HOME="); ok {
			home = v
		}
	}
	shared, err := os.ReadFile(filepath.Join(home, sharedMarker))
	if home == "" || err != nil {
		return bin, args
	}
	script := `mount --bind "$1" "$2" && shift 2 && exec "$@"`
	return "unshare", append([]string{"-m", "sh", "-c", script, "sh", string(shared), filepath.Join(home, "registry"), bin}, args...)
}

// Proc is a cargo running in the background, in its own process group (as a
// CI job is), so that a kill reaches cargo, rustc and build scripts.
type Proc struct {
	Cmd       *exec.Cmd
	out, errb syncBuffer
	startErr  error
}

// syncBuffer is a bytes.Buffer a test may read while the run writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StderrSoFar is what the run has written to stderr until now.
func (p *Proc) StderrSoFar() string { return p.errb.String() }

// Start runs bin with args in dir.
func Start(bin, dir string, env, args []string) *Proc {
	p := &Proc{Cmd: Command(bin, dir, env, args)}
	p.Cmd.Stdout, p.Cmd.Stderr = &p.out, &p.errb
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.startErr = p.Cmd.Start()
	return p
}

// Command is exec.Command for a runner: in dir, with env, and with the
// shared registry mounted into its CARGO_HOME.
func Command(bin, dir string, env, args []string) *exec.Cmd {
	bin, args = wrap(bin, env, args)
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	return cmd
}

// KillGroup SIGKILLs the whole process group: cargo and everything it runs.
// A cargo-shim holder, in a session of its own, is not in it: it must notice
// cargo's death by itself.
func (p *Proc) KillGroup() {
	if p.Cmd.Process != nil {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Wait waits for the run to end.
func (p *Proc) Wait() Result {
	if p.startErr != nil {
		return Result{Code: -1, Err: p.startErr}
	}
	err := p.Cmd.Wait()
	res := Result{Stdout: p.out.String(), Stderr: p.errb.String(), Err: err}
	if p.Cmd.ProcessState != nil {
		res.Code = p.Cmd.ProcessState.ExitCode()
	}
	return res
}

// CopyDir copies a directory tree as cp -a does.
func CopyDir(src, dst string) error {
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}
