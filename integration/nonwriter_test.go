package integration

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/shim/admin"
)

// The rule: an admin command run by a uid that cannot write the registry
// says so: the real cause (permission denied, naming the path), the fix
// (`cargo-shim init --group`), a non-zero exit status; and a dry run
// predicts what the real run by that uid does.
func TestAdminWithoutWriteAccess(t *testing.T) {
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	reachable(w.Shared)
	m := newMember(t, 0, false)
	home := w.memberHome(m, w.Shared)
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs"))

	r := w.AdminAs(m, home, "repair")
	out := r.Stdout + r.Stderr
	if r.Code == 0 || !strings.Contains(out, "permission denied") || !strings.Contains(out, "init --group") || strings.Contains(out, "once the builds") {
		t.Errorf("repair by a uid that cannot write: want exit 1, permission denied and init --group, not a retry: %s", r)
	}

	dry := w.AdminAs(m, home, "gc", "--max-age", "0s", "--dry-run", "--json")
	real := w.AdminAs(m, home, "gc", "--max-age", "0s", "--json")
	d, g := decode[admin.GCReport](t, dry), decode[admin.GCReport](t, real)
	if len(d.Removed) != len(g.Removed) || d.FreedBytes != g.FreedBytes || dry.Code != real.Code {
		t.Errorf("the dry run predicted %d removals (%d bytes, exit %d), the real run did %d (%d bytes, exit %d):\n%s\n%s",
			len(d.Removed), d.FreedBytes, dry.Code, len(g.Removed), g.FreedBytes, real.Code, dry, real)
	}
	if !strings.Contains(dry.Stderr, "permission denied") || !strings.Contains(dry.Stderr, "init --group") {
		t.Errorf("the dry run does not say it cannot remove: %s", dry)
	}
	if strings.Contains(real.Stderr, "broken") {
		t.Errorf("gc calls healthy crates broken: %s", real)
	}
}
