package loopback

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// NewHome makes a CARGO_HOME whose registry/ is the shared directory (a
// symlink standing in for a bind mount), configured for registry r.
func NewHome(dir string, r *Registry, shared string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(r.CargoConfig()), 0o644); err != nil {
		return err
	}
	return os.Symlink(shared, filepath.Join(dir, "registry"))
}

// Proc is a cargo running in the background, in its own process group (as a
// CI job is), so that a kill reaches cargo, rustc and build scripts.
type Proc struct {
	Cmd       *exec.Cmd
	out, errb bytes.Buffer
	startErr  error
}

// Start runs bin with args in dir.
func Start(bin, dir string, env, args []string) *Proc {
	p := &Proc{Cmd: exec.Command(bin, args...)}
	p.Cmd.Dir = dir
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = &p.out, &p.errb
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.startErr = p.Cmd.Start()
	return p
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
