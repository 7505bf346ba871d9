package main

import (
	"strings"
	"testing"
)

// Rule: the demo names the cause people search for, not only cargo's
// outermost "failed to download" line; runs that failed alike group
// together whatever their home. The stderr samples are cargo 1.95's, as
// the demo's plain runs print them.
func TestCauseLineNamesTheCause(t *testing.T) {
	cases := map[string]string{
		"error: failed to download replaced source registry `crates-io`\n\nCaused by:\n  failed to unpack package `fnv v1.0.7`\n\nCaused by:\n  failed to open `/tmp/d/plain/home3/registry/src/127.0.0.1-e62c2158396887d4/fnv-1.0.7/.cargo-ok`\n\nCaused by:\n  File exists (os error 17)\n": "failed to open `.../registry/src/127.0.0.1-e62c2158396887d4/fnv-1.0.7/.cargo-ok`: File exists (os error 17)",
		"   Compiling flat v1.0.0\nerror: failed to download `flat v1.0.0`\n\nCaused by:\n  unable to get packages from source\n\nCaused by:\n  failed to iterate over archive\n\nCaused by:\n  unexpected end of file\n":                                                                     "failed to iterate over archive: unexpected end of file",
		"   Compiling deep-mods v2.1.0\nerror: couldn't read `/tmp/d/plain/home9/registry/src/127.0.0.1-e62c2158396887d4/deep-mods-2.1.0/src/lib.rs`: No such file or directory (os error 2)\n\nerror: could not compile `deep-mods`\n":                                                       "error: couldn't read `.../registry/src/127.0.0.1-e62c2158396887d4/deep-mods-2.1.0/src/lib.rs`: No such file or directory (os error 2)",
	}
	for stderr, want := range cases {
		if got := causeLine(stderr); !strings.Contains(got, want) || strings.Contains(got, "/tmp/") {
			t.Errorf("causeLine = %q, want it to contain %q and no home path", got, want)
		}
	}
}
