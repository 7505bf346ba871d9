package shim

import (
	"strings"
	"testing"

	"github.com/cargo-shim/cargo-shim/shim/store"
)

func TestVersionReq(t *testing.T) {
	cases := []struct {
		req  string
		in   string // versions that match
		out  string // versions that do not
		fail bool
	}{
		{req: "=1.2.3", in: "1.2.3", out: "1.2.4 1.2.3-alpha 1.3.0"},
		{req: "^1.2.3", in: "1.2.3 1.9.0", out: "2.0.0 1.2.2 2.0.0-alpha 1.5.0-rc.1"},
		{req: "^0.2.3", in: "0.2.3 0.2.9", out: "0.3.0 0.2.2"},
		{req: "^0.0.3", in: "0.0.3", out: "0.0.4"},
		{req: "1.2", in: "1.2.0 1.8.1", out: "2.0.0 1.1.9"},
		{req: "~1.2.3", in: "1.2.3 1.2.9", out: "1.3.0"},
		{req: ">=1, <2", in: "1.0.0 1.99.0", out: "2.0.0 0.9.0"},
		{req: ">1.2", in: "1.3.0", out: "1.2.9"},
		{req: "<=1.2", in: "1.2.9 1.0.0", out: "1.3.0"},
		{req: "*", in: "0.0.1 9.0.0", out: "1.0.0-beta"},
		{req: "=2.0.0-rc.1", in: "2.0.0-rc.1", out: "2.0.0-rc.2 2.0.0"},
		{req: ">=2.0.0-rc.1", in: "2.0.0-rc.2 2.0.0", out: "2.0.0-alpha 2.1.0-rc.1"},
		{req: "a.b", fail: true},
	}
	for _, tc := range cases {
		req, err := parseReq(tc.req)
		if (err != nil) != tc.fail {
			t.Fatalf("%s: err %v", tc.req, err)
		}
		for _, v := range strings.Fields(tc.in) {
			if sv, _ := parseSemver(v); !req.matches(sv) {
				t.Errorf("%s should match %s", tc.req, v)
			}
		}
		for _, v := range strings.Fields(tc.out) {
			if sv, _ := parseSemver(v); req.matches(sv) {
				t.Errorf("%s should not match %s", tc.req, v)
			}
		}
	}
}

func TestParseSemverRefusesPaths(t *testing.T) {
	for _, v := range []string{"1.0.0-../../x", "1.0.0+a/b", "1.0.0-", "1.0.0-a..b", "1.0", "01.0.0", "1.0.0-a\x00"} {
		if _, err := parseSemver(v); err == nil {
			t.Errorf("%q accepted as a version", v)
		}
	}
	for _, v := range []string{"1.0.0", "1.0.0-rc.1", "1.0.0+build.5", "110.0.0+1.1.0f", "1.0.0-x-y"} {
		if _, err := parseSemver(v); err != nil {
			t.Errorf("%q refused", v)
		}
	}
}

func TestChooseVersion(t *testing.T) {
	entries := []store.IndexEntry{
		{Vers: "1.0.0"}, {Vers: "1.10.0"}, {Vers: "1.9.0"}, {Vers: "2.0.0", Yanked: true},
		{Vers: "2.1.0-beta.1"}, {Vers: "0.9.0"},
	}
	cases := map[string]string{"": "1.10.0", "1.9.0": "1.9.0", "2.0.0": "2.0.0", "^0.9": "0.9.0",
		"<1.5": "1.0.0", ">=2.1.0-beta.1": "2.1.0-beta.1", "3.0.0": ""}
	for spec, want := range cases {
		req, err := installReq(spec)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := chooseVersion(entries, req)
		if got := map[bool]string{true: e.Vers}[ok]; got != want {
			t.Errorf("%q: got %q, want %q", spec, got, want)
		}
	}
}

func TestParseInstallArgs(t *testing.T) {
	cases := map[string]string{
		"eval-tool --locked":                          "crates=[eval-tool] path= version= git=false",
		"--path . --locked":                           "crates=[] path=. version= git=false",
		"--path=../x":                                 "crates=[] path=../x version= git=false",
		"--root /r --version 1.2.3 eval-tool":         "crates=[eval-tool] path= version=1.2.3 git=false",
		"eval-tool@1.0.0 --registry loop -j 2":        "crates=[eval-tool@1.0.0] path= version= git=false",
		"--bin eval eval-tool":                        "crates=[eval-tool] path= version= git=false",
		"--bin --locked eval-tool":                    "crates=[eval-tool] path= version= git=false",
		"--git https://example.invalid/x.git --tag v": "crates=[] path= version= git=true",
		"--features a,b -F c a b":                     "crates=[a b] path= version= git=false",
	}
	for in, want := range cases {
		a := parseInstallArgs(strings.Fields(in))
		got := "crates=[" + strings.Join(a.crates, " ") + "] path=" + a.path + " version=" + a.version + " git=" + map[bool]string{true: "true", false: "false"}[a.git]
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
}

// The git source of cargo install --git: its URL and reference.
func TestParseInstallGitArgs(t *testing.T) {
	cases := map[string]string{
		"--git https://example.invalid/x.git --tag v":        "https://example.invalid/x.git branch= tag=v rev=",
		"--git=git://h/x --branch dev tool":                  "git://h/x branch=dev tag= rev=",
		"tool --rev 0123abc --git ssh://git@h/x --locked":    "ssh://git@h/x branch= tag= rev=0123abc",
		"--git https://example.invalid/x --rev=deadbeef x y": "https://example.invalid/x branch= tag= rev=deadbeef",
	}
	for in, want := range cases {
		a := parseInstallArgs(strings.Fields(in))
		got := a.gitURL + " branch=" + a.gitRef.Branch + " tag=" + a.gitRef.Tag + " rev=" + a.gitRef.Rev
		if got != want || !a.git {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
}
