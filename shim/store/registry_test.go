package store

import "testing"

func TestSplitNameVersion(t *testing.T) {
	cases := map[string]string{
		"fnv-1.0.7":               "fnv|1.0.7",
		"foo-2-bar-1.0.0":         "foo-2-bar|1.0.0",
		"a-b-0.2.0-alpha.1":       "a-b|0.2.0-alpha.1",
		"x-1.0.0+build.5":         "x|1.0.0+build.5",
		"windows-sys-0.59.0":      "windows-sys|0.59.0",
		"no-version":              "",
		"v-1.2":                   "",
		".cargo-shim-tmp-x-1.0.0": ".cargo-shim-tmp-x|1.0.0",
	}
	for in, want := range cases {
		n, v, ok := splitNameVersion(in)
		got := ""
		if ok {
			got = n + "|" + v
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}
