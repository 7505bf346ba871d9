package gitstore

import (
	"os"
	"path/filepath"
	"testing"
)

// Cargo's CanonicalUrl rules decide the directory names: github.com is
// case-insensitive and https, ".git" and a trailing slash are dropped.
func TestParseSourceCanonicalises(t *testing.T) {
	const c = "0123456789abcdef0123456789abcdef01234567"
	same := []string{
		"git+https://github.com/Rust-Lang/Cargo.git?branch=master#" + c,
		"git+https://github.com/rust-lang/cargo#" + c,
		"git+git://github.com/rust-lang/cargo/#" + c,
	}
	var first Source
	for n, src := range same {
		s, ok := ParseSource("cargo", src)
		if !ok {
			t.Fatalf("%s: not parsed", src)
		}
		if n == 0 {
			first = s
			if s.Canonical != "https://github.com/rust-lang/cargo" || s.Ident[:6] != "cargo-" {
				t.Fatalf("%s: canonical %q ident %q", src, s.Canonical, s.Ident)
			}
		} else if s.Ident != first.Ident {
			t.Errorf("%s: ident %s, want %s", src, s.Ident, first.Ident)
		}
	}
	for _, bad := range []string{
		"registry+https://github.com/rust-lang/crates.io-index",
		"git+https://example.com/x#abc",             // not a full commit
		"git+https://example.com/x#" + c[:39] + "g", // not hex
		"git+https://example.com/..#" + c,           // a name that is a path step
		"git+https://example.com/x?rev=1",           // no commit at all
	} {
		if s, ok := ParseSource("x", bad); ok {
			t.Errorf("%q parsed as %+v", bad, s)
		}
	}
}

// The checkout's directory is the short id cargo made: an existing
// directory that is a prefix of the commit wins over the 7-digit form.
func TestCheckoutNameFollowsExistingDir(t *testing.T) {
	g := Store{Root: t.TempDir()}
	s, _ := ParseSource("x", "git+https://example.com/x#0123456789abcdef0123456789abcdef01234567")
	if got := filepath.Base(g.Checkout(s)); got != "0123456" {
		t.Fatalf("no db, no dir: %s", got)
	}
	if err := os.MkdirAll(filepath.Join(g.Checkouts(s), "01234567"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(g.Checkout(s)); got != "01234567" {
		t.Fatalf("with a longer dir: %s", got)
	}
}

// A record another uid could have written is not trusted: it could hide a
// damaged checkout.
func TestStampRecordTrust(t *testing.T) {
	g := Store{Root: t.TempDir()}
	p := filepath.Join(g.ShimDir(), "state", "x-1", "c")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !g.trusted(p) {
		t.Fatal("own record in own directories not trusted")
	}
	if err := os.Chmod(filepath.Dir(p), 0o777); err != nil {
		t.Fatal(err)
	}
	if g.trusted(p) {
		t.Fatal("record in a world-writable, non-sticky directory trusted")
	}
	if err := os.Chmod(filepath.Dir(p), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if !g.trusted(p) {
		t.Fatal("record in a sticky shared directory not trusted")
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if g.trusted(p) {
			t.Fatal("record owned by another uid trusted")
		}
	}
}
