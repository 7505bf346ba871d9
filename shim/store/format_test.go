package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func formatRegistry(t *testing.T) Registry {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".cargo-shim"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Registry{Root: root}
}

// The rule: a run declares the formats on a registry that declares none, and
// a registry declaring another lock layout makes the run stand aside (its
// locks would not exclude the other release's runs).
func TestCheckFormatDeclaresAndRefusesAnotherLockLayout(t *testing.T) {
	r := formatRegistry(t)
	if err := r.CheckFormat(); err != nil {
		t.Fatal(err)
	}
	f, err := r.Formats()
	if err != nil || f["locks"] != LockLayout || f["plan"] != PlanFormat {
		t.Fatalf("declared %v, %v", f, err)
	}
	os.WriteFile(r.FormatPath(), []byte(formatHeader+"\nlocks 2\n"), 0o644)
	if err := r.CheckFormat(); err == nil || !strings.Contains(err.Error(), "lock layout 2") {
		t.Fatalf("another lock layout: got %v", err)
	}
}

// Another uid's declaration is not trusted: forged, it would make every run
// stand aside.
func TestFormatOfAnotherUidIsIgnored(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown the record to another uid")
	}
	r := formatRegistry(t)
	os.WriteFile(r.FormatPath(), []byte(formatHeader+"\nlocks 2\n"), 0o644)
	if err := os.Chown(r.FormatPath(), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckFormat(); err != nil {
		t.Fatalf("a forged declaration was believed: %v", err)
	}
}
