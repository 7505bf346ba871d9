package store

import (
	"os"
	"path/filepath"
	"testing"
)

// A record is believed only when no other uid could have written or
// renamed it; anything else may only make the shim look closer.
func TestTrustedRecord(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another uid")
	}
	const other = 65534
	cases := []struct {
		name   string
		spoil  func(r Registry, p string)
		wanted bool
	}{
		{"ours", func(Registry, string) {}, true},
		{"record of another uid", func(_ Registry, p string) { os.Lchown(p, other, other) }, false},
		{"directory of another uid", func(_ Registry, p string) { os.Lchown(filepath.Dir(p), other, other) }, false},
		{"directory others may rename in", func(_ Registry, p string) { os.Chmod(filepath.Dir(p), 0o777) }, false},
		{"shim directory of another uid", func(r Registry, _ string) { os.Lchown(r.ShimDir(), other, other) }, false},
		{"record a symlink", func(_ Registry, p string) {
			os.Rename(p, p+".real")
			os.Symlink(p+".real", p)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Registry{Root: t.TempDir()}
			i := Instance{Crate: Crate{Name: "flat", Version: "1.0.0"}, Regdir: "rd"}
			if err := r.writeFileAtomic(r.StatePath(i), []byte("cargo-shim-state 1\n")); err != nil {
				t.Fatal(err)
			}
			tc.spoil(r, r.StatePath(i))
			if got := r.trustedRecord(r.StatePath(i)); got != tc.wanted {
				t.Errorf("trusted = %v, want %v", got, tc.wanted)
			}
		})
	}
}
