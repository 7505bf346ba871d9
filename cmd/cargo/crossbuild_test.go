package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Rule: both commands compile for macOS and Windows (where the drop-in
// passes through to the real cargo and cargo-shim says it supports Linux
// only), so a Linux-only call added outside a linux-tagged file fails CI
// here rather than a user's `go install` there.
func TestBuildsOnDarwinAndWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the commands")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, target := range [][2]string{{"darwin", "arm64"}, {"darwin", "amd64"}, {"windows", "amd64"}} {
		t.Run(target[0]+"/"+target[1], func(t *testing.T) {
			for _, pkg := range []string{"../../cmd/cargo", "../../cmd/cargo-shim"} {
				cmd := exec.Command(goBin, "vet", pkg)
				cmd.Env = append(os.Environ(), "GOOS="+target[0], "GOARCH="+target[1], "CGO_ENABLED=0")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("GOOS=%s GOARCH=%s go vet %s: %v\n%s", target[0], target[1], pkg, err, out)
				}
				cmd = exec.Command(goBin, "build", "-o", filepath.Join(t.TempDir(), "bin"), pkg)
				cmd.Env = append(os.Environ(), "GOOS="+target[0], "GOARCH="+target[1], "CGO_ENABLED=0")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("GOOS=%s GOARCH=%s go build %s: %v\n%s", target[0], target[1], pkg, err, out)
				}
			}
		})
	}
}
