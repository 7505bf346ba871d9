package shim

import (
	"strings"
	"testing"
)

// The fetch that stands in for cargo's missing locks on NFS fetches what
// the build would: same manifest, same offline/frozen/locked, same --config
// and -Z, and nothing the build's own options would change otherwise.
func TestFetchArgsFollowTheCommand(t *testing.T) {
	cmd := Classify([]string{"+stable", "--config", "net.retry=5", "build", "--manifest-path", "w/Cargo.toml", "--frozen", "-Zunstable-options", "--release", "--", "--locked"})
	r := &Run{Cmd: cmd, Offline: true}
	got := strings.Join(r.fetchArgs(), " ")
	want := "+stable fetch --manifest-path w/Cargo.toml --offline --config net.retry=5 --frozen -Zunstable-options"
	if got != want {
		t.Fatalf("fetch args:\n got %s\nwant %s", got, want)
	}
}
