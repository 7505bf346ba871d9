package gitstore

import "testing"

// The directory names cargo 1.95 made for these URLs (read off a real
// git/db); a registry vector from the same hash checks the kind-byte form.
func TestShortHashMatchesCargo(t *testing.T) {
	for url, want := range map[string]string{
		"git://127.0.0.1:19418/dep":          "a6e9c816bc57a81e",
		"git://127.0.0.1:19418/inner":        "315c2c3ef1eac7ee",
		"\x03sparse+http://127.0.0.1:18731/": "15e3ab1dc91626ce",
	} {
		if got := shortHash(url); got != want {
			t.Errorf("shortHash(%q) = %s, want %s", url, got, want)
		}
	}
}
