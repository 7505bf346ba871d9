package lockfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// status reports what flock does on the registry's filesystem, measured:
// on a local filesystem every lock the shim takes works, exclusion between
// two descriptors holds, and the probe leaves nothing behind. (On NFSv4
// the same probe reports exclusive/read-only refused with EBADF.)
func TestProbeLocksMeasures(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".cargo-shim")
	p := ProbeLocks(dir)
	if !p.OK() {
		t.Fatalf("probe: %s", p.Summary())
	}
	// NFSv4 refuses exactly one: exclusive through a read-only descriptor.
	if nfs := IsNFS(filepath.Dir(dir)); !nfs && strings.Contains(p.Summary(), "refused") ||
		nfs && p.ExclusiveReadOnly != "ok" && !strings.Contains(p.ExclusiveReadOnly, "EBADF") {
		t.Fatalf("summary: %s", p.Summary())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("the probe left %s behind", ents[0].Name())
	}
}
