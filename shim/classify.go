package shim

import (
	"strings"
)

// Kind is how much of the run a command needs.
type Kind int

const (
	// PassThrough: the command never touches CARGO_HOME (cargo --version,
	// new, clean without -p, ...): straight to cargo, no registry I/O.
	PassThrough Kind = iota
	// Unplanned: the command downloads but not from the workspace's
	// Cargo.lock (update, add, ...): only cargo's own lock is shared.
	Unplanned
	// Planned: the command uses the workspace's registry crates: plan, lock,
	// check, repair, then cargo.
	Planned
	// Admin: `cargo shim ...`, the admin command through cargo's
	// external-subcommand convention.
	Admin
)

// Command is a classified cargo command line.
type Command struct {
	// Toolchain is a leading "+toolchain" argument, passed on untouched.
	Toolchain    string
	Args         []string // the arguments after Toolchain
	Sub          string   // subcommand, "" when none
	SubArgs      []string // arguments after the subcommand
	Kind         Kind
	ManifestPath string
	// TargetDir is --target-dir, "" when not given.
	TargetDir string
	Offline   bool
	// Quiet and Verbose are cargo's -q/--quiet and -v/-vv/--verbose,
	// before or after the subcommand.
	Quiet   bool
	Verbose int
}

// verbosity notes a -q or -v argument; it says whether a was one.
func (c *Command) verbosity(a string) bool {
	switch {
	case a == "-q" || a == "--quiet":
		c.Quiet = true
	case a == "--verbose":
		c.Verbose++
	case len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "v") == "":
		c.Verbose += len(a) - 1
	default:
		return false
	}
	return true
}

// globalsWithValue are cargo's options before the subcommand that take a
// separate value.
var globalsWithValue = map[string]bool{
	"--color": true, "--config": true, "-Z": true, "-C": true, "--explain": true,
}

var passThrough = map[string]bool{
	"help": true, "new": true, "init": true, "locate-project": true, "pkgid": true,
	"read-manifest": true, "verify-project": true, "version": true,
	"login": true, "logout": true, "owner": true, "yank": true, "search": true,
	"uninstall": true, "report": true, "config": true,
}

var unplanned = map[string]bool{
	"update": true, "generate-lockfile": true, "add": true, "remove": true, "info": true,
}

// globals reads cargo's options before the subcommand and returns the
// subcommand's index (len(args) when there is none).
func (c *Command) globals(args []string) int {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--offline" || a == "--frozen" {
			c.Offline = true
			continue
		}
		if c.verbosity(a) {
			continue
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		if globalsWithValue[a] {
			i++
			continue
		}
		if a == "--" {
			return len(args)
		}
	}
	return i
}

// Classify reads a cargo command line (without argv[0]).
func Classify(args []string) Command {
	c := Command{Args: args}
	if len(args) > 0 && strings.HasPrefix(args[0], "+") {
		c.Toolchain = args[0]
		args = args[1:]
		c.Args = args
	}
	i := c.globals(args)
	if i >= len(args) {
		// cargo, cargo --version, cargo --list, cargo --explain E0001 ...
		c.Kind = PassThrough
		return c
	}
	c.Sub = args[i]
	c.SubArgs = args[i+1:]
	packageFlag := false
	noDeps := false
	help := false
	for j := 0; j < len(c.SubArgs); j++ {
		a := c.SubArgs[j]
		if a == "--" {
			break
		}
		switch {
		case c.verbosity(a):
		case a == "--offline" || a == "--frozen":
			c.Offline = true
		case a == "--manifest-path" && j+1 < len(c.SubArgs):
			c.ManifestPath = c.SubArgs[j+1]
			j++
		case strings.HasPrefix(a, "--manifest-path="):
			c.ManifestPath = strings.TrimPrefix(a, "--manifest-path=")
		case a == "--target-dir" && j+1 < len(c.SubArgs):
			c.TargetDir = c.SubArgs[j+1]
			j++
		case strings.HasPrefix(a, "--target-dir="):
			c.TargetDir = strings.TrimPrefix(a, "--target-dir=")
		case a == "-p" || a == "--package" || strings.HasPrefix(a, "--package=") || (strings.HasPrefix(a, "-p") && len(a) > 2):
			packageFlag = true
		case a == "--no-deps":
			noDeps = true
		case a == "-h" || a == "--help":
			help = true
		}
	}
	switch {
	case c.Sub == "shim":
		c.Kind = Admin
	case help || passThrough[c.Sub]:
		c.Kind = PassThrough
	case c.Sub == "clean" && !packageFlag:
		c.Kind = PassThrough
	case c.Sub == "metadata" && noDeps:
		c.Kind = PassThrough
	case unplanned[c.Sub]:
		c.Kind = Unplanned
	default:
		// build, check, test, run, doc, fetch, tree, vendor, clippy,
		// package and publish (their verification build uses the
		// workspace's Cargo.lock), install (install.go), and external
		// subcommands, which run cargo on the workspace themselves.
		c.Kind = Planned
	}
	return c
}
