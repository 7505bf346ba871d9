package shim

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		args    string
		kind    Kind
		tc, mp  string
		offline bool
	}{
		{"--version", PassThrough, "", "", false},
		{"-V", PassThrough, "", "", false},
		{"", PassThrough, "", "", false},
		{"help build", PassThrough, "", "", false},
		{"new foo", PassThrough, "", "", false},
		{"init", PassThrough, "", "", false},
		{"clean", PassThrough, "", "", false},
		{"clean -p fnv", Planned, "", "", false},
		{"clean --package=fnv", Planned, "", "", false},
		{"locate-project", PassThrough, "", "", false},
		{"pkgid", PassThrough, "", "", false},
		{"build --help", PassThrough, "", "", false},
		{"metadata --no-deps", PassThrough, "", "", false},
		{"metadata", Planned, "", "", false},
		{"build", Planned, "", "", false},
		{"+nightly build --offline", Planned, "+nightly", "", true},
		{"+stable --version", PassThrough, "+stable", "", false},
		{"--frozen test", Planned, "", "", true},
		{"--color never -Z unstable-options check --manifest-path a/Cargo.toml", Planned, "", "a/Cargo.toml", false},
		{"run --manifest-path=b/Cargo.toml -- --offline", Planned, "", "b/Cargo.toml", false},
		{"install ripgrep", Planned, "", "", false},
		{"install --list", Planned, "", "", false},
		{"publish --dry-run", Planned, "", "", false},
		{"add fnv", Unplanned, "", "", false},
		{"update", Unplanned, "", "", false},
		{"shim verify", Admin, "", "", false},
		{"nextest run", Planned, "", "", false},
		{"--config net.offline=true build", Planned, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.args, func(t *testing.T) {
			c := Classify(strings.Fields(tc.args))
			if c.Kind != tc.kind || c.Toolchain != tc.tc || c.ManifestPath != tc.mp || c.Offline != tc.offline {
				t.Fatalf("got kind %v toolchain %q manifest %q offline %v", c.Kind, c.Toolchain, c.ManifestPath, c.Offline)
			}
		})
	}
}

func TestCargoEnvReplacesInherited(t *testing.T) {
	env := cargoEnv([]string{"A=1", ExecedEnv + "=/old/cargo", ActiveEnv + "=1", "CARGO_SHIM_EXECEDX=keep"}, "/new/cargo")
	got := strings.Join(env, " ")
	if strings.Count(got, ExecedEnv+"=") != 1 || !strings.Contains(got, ExecedEnv+"=/new/cargo") || strings.Count(got, ActiveEnv+"=") != 1 || !strings.Contains(got, "CARGO_SHIM_EXECEDX=keep") {
		t.Fatalf("env: %v", env)
	}
}

func TestClassifyVerbosity(t *testing.T) {
	cases := []struct {
		args    []string
		quiet   bool
		verbose int
	}{
		{[]string{"-q", "build"}, true, 0},
		{[]string{"build", "--quiet"}, true, 0},
		{[]string{"build", "-v"}, false, 1},
		{[]string{"-vv", "test"}, false, 2},
		{[]string{"--verbose", "build", "-v"}, false, 2},
		{[]string{"run", "--", "-q", "-v"}, false, 0},
		{[]string{"build", "--release"}, false, 0},
	}
	for _, tc := range cases {
		c := Classify(tc.args)
		if c.Quiet != tc.quiet || c.Verbose != tc.verbose {
			t.Errorf("Classify(%q): quiet %v verbose %d, want %v %d", tc.args, c.Quiet, c.Verbose, tc.quiet, tc.verbose)
		}
		if c.Kind != Planned {
			t.Errorf("Classify(%q): kind %v, want planned", tc.args, c.Kind)
		}
	}
}

func TestVerbosityFollowsCargo(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want LogMode
	}{
		{map[string]string{}, []string{"build"}, LogInfo},
		{map[string]string{}, []string{"-q", "build"}, LogQuiet},
		{map[string]string{"CARGO_TERM_QUIET": "true"}, []string{"build"}, LogQuiet},
		{map[string]string{"CARGO_TERM_QUIET": "true"}, []string{"build", "-v"}, LogVerbose},
		{map[string]string{"CARGO_TERM_VERBOSE": "true"}, []string{"build"}, LogVerbose},
		{map[string]string{}, []string{"build", "-vv"}, LogDebug},
		{map[string]string{"CARGO_SHIM_LOG": "info"}, []string{"-q", "build"}, LogInfo},
	}
	for _, tc := range cases {
		if got := Verbosity(LogInfo, env(tc.env), Classify(tc.args)); got != tc.want {
			t.Errorf("env %v args %q: mode %d, want %d", tc.env, tc.args, got, tc.want)
		}
	}
}

// cargoEnv reads the environ it is given, not the process's.
func TestCargoEnvKeepsUsersAutoClean(t *testing.T) {
	env := LookupIn(cargoEnv([]string{"CARGO_CACHE_AUTO_CLEAN_FREQUENCY=1 day"}, "/c"))
	if got := env("CARGO_CACHE_AUTO_CLEAN_FREQUENCY"); got != "1 day" {
		t.Fatalf("user's frequency replaced: %q", got)
	}
	t.Setenv("CARGO_CACHE_AUTO_CLEAN_FREQUENCY", "always")
	env = LookupIn(cargoEnv([]string{"A=1"}, "/c"))
	if got := env("CARGO_CACHE_AUTO_CLEAN_FREQUENCY"); got != "never" {
		t.Fatalf("auto-clean for an environ without it: %q, want never", got)
	}
}

func TestLookupInFirstWins(t *testing.T) {
	env := LookupIn([]string{"AB=x", "A=1", "A=2", "B="})
	if env("A") != "1" || env("AB") != "x" || env("B") != "" || env("C") != "" {
		t.Fatalf("A=%q AB=%q", env("A"), env("AB"))
	}
}

// --target-dir names the dir a repair must reach (package targetdir), in
// both spellings, and never after `--` (the program's own arguments).
func TestClassifyTargetDir(t *testing.T) {
	for args, want := range map[string]string{
		"build --target-dir t1":             "t1",
		"test --release --target-dir=/x/t2": "/x/t2",
		"run -- --target-dir nope":          "",
		"build":                             "",
	} {
		if got := Classify(strings.Fields(args)).TargetDir; got != want {
			t.Errorf("%q: TargetDir %q, want %q", args, got, want)
		}
	}
}
