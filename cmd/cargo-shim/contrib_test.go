//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Rule: the shipped gc service and timer are units systemd accepts, with
// their ExecStart pointed at a real cargo-shim (systemd-analyze verify;
// skipped where systemd is not installed), and `make install
// WITH_SYSTEMD=1 WITH_CRON=1` puts them, and the cron file, where it says.
func TestContribUnitsVerifyAndInstall(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cargo-shim")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	service := strings.ReplaceAll(readRepo(t, "contrib/systemd/cargo-shim-gc.service"), "/usr/local/bin/cargo-shim", bin)
	os.WriteFile(filepath.Join(dir, "cargo-shim-gc.service"), []byte(service), 0o644)
	os.WriteFile(filepath.Join(dir, "cargo-shim-gc.timer"), []byte(readRepo(t, "contrib/systemd/cargo-shim-gc.timer")), 0o644)
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(analyze, "verify", filepath.Join(dir, "cargo-shim-gc.service"), filepath.Join(dir, "cargo-shim-gc.timer")).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze not installed: units not verified")
	}
	// The cron line: five time fields, a user, then the command.
	for _, l := range strings.Split(readRepo(t, "contrib/cron/cargo-shim-gc"), "\n") {
		if l == "" || strings.HasPrefix(l, "#") || strings.Contains(strings.SplitN(l, " ", 2)[0], "=") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 7 || f[5] != "root" || f[6] != "/usr/local/bin/cargo-shim" {
			t.Errorf("cron line is not `m h dom mon dow user command`: %q", l)
		}
	}

	dest := filepath.Join(dir, "dest")
	make := exec.Command("make", "-s", "install", "DESTDIR="+dest, "PREFIX=/opt/cs", "WITH_SYSTEMD=1", "WITH_CRON=1")
	make.Dir = repoRoot
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"opt/cs/bin/cargo-shim", "opt/cs/lib/cargo-shim/bin/cargo", "etc/systemd/system/cargo-shim-gc.service", "etc/systemd/system/cargo-shim-gc.timer", "etc/cron.d/cargo-shim-gc"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install WITH_SYSTEMD=1 WITH_CRON=1: %v", err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/cargo-shim-gc.service")); !strings.Contains(string(b), "ExecStart=/opt/cs/bin/cargo-shim gc ") {
		t.Errorf("the installed service does not run $(PREFIX)/bin/cargo-shim:\n%s", b)
	}
}

// Rule: the version lives in the source and `make release VERSION=x.y.z`
// moves it and CHANGELOG.md's "(unreleased)" heading together; a version
// that is not x.y.z is refused and changes nothing. Run on a copy.
func TestMakeReleaseBumpsVersionAndChangelog(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "shim"), 0o755)
	for _, f := range []string{"Makefile", "CHANGELOG.md", "shim/version.go"} {
		os.WriteFile(filepath.Join(dir, f), []byte(readRepo(t, f)), 0o644)
	}
	release := func(v string) (string, error) {
		cmd := exec.Command("make", "-s", "release", "VERSION="+v)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := release("1.2"); err == nil {
		t.Fatalf("make release VERSION=1.2 passed: %s", out)
	}
	if v, _ := os.ReadFile(filepath.Join(dir, "shim/version.go")); string(v) != readRepo(t, "shim/version.go") {
		t.Fatal("a refused release changed shim/version.go")
	}
	if out, err := release("9.8.7"); err != nil {
		t.Fatalf("make release VERSION=9.8.7: %v\n%s", err, out)
	}
	v, _ := os.ReadFile(filepath.Join(dir, "shim/version.go"))
	c, _ := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	if !strings.Contains(string(v), `const Version = "9.8.7"`) {
		t.Errorf("version.go after release:\n%s", v)
	}
	if !strings.Contains(string(c), "\n## 9.8.7 (") || strings.Contains(string(c), " (unreleased)\n") {
		t.Errorf("CHANGELOG.md after release:\n%s", c)
	}
}
