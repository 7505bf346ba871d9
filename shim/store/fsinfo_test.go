package store

import "testing"

// Rule: status prints each mount option once: /proc/self/mountinfo lists
// the mount's options and the superblock's, which share some ("rw").
func TestMergeOptionsOnce(t *testing.T) {
	got := mergeOptions("rw,relatime", "rw,discard,resv_strict")
	if want := "rw,relatime,discard,resv_strict"; got != want {
		t.Fatalf("mergeOptions = %q, want %q", got, want)
	}
}
