//go:build linux

package main

import (
	"os"
	"strings"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim"
)

// globalOptions are the options every subcommand takes, before or after
// its name, as cargo's -q, -v and --color.
type globalOptions struct {
	quiet   bool
	verbose int
	color   string // "", auto, always, never
}

// globals holds the options of this run (one run per process; the test
// binary resets it at each run).
var globals globalOptions

// parseGlobals takes the options before the subcommand: -q, -v (-vv),
// --color WHEN, -V, -h, and clusters of them such as -vV. It returns the
// arguments from the subcommand on.
func parseGlobals(args []string) (rest []string, version, help bool, err error) {
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--quiet":
			globals.quiet = true
		case a == "--verbose":
			globals.verbose++
		case a == "--version":
			version = true
		case a == "--help":
			help = true
		case a == "--color" || strings.HasPrefix(a, "--color="):
			v, ok := strings.CutPrefix(a, "--color=")
			if !ok {
				if len(args) < 2 {
					return nil, false, false, usagef("a value is required for '--color <WHEN>' but none was supplied")
				}
				v, args = args[1], args[1:]
			}
			if err := setColor(v); err != nil {
				return nil, false, false, err
			}
		case len(a) > 1 && a[0] == '-' && a[1] != '-':
			for _, r := range a[1:] {
				switch r {
				case 'q':
					globals.quiet = true
				case 'v':
					globals.verbose++
				case 'V':
					version = true
				case 'h':
					help = true
				default:
					return nil, false, false, usagef("unexpected argument '%s' found", a)
				}
			}
		case strings.HasPrefix(a, "--"):
			return nil, false, false, usagef("unexpected argument '%s' found", a)
		default:
			return args, version, help, nil
		}
		args = args[1:]
	}
	return nil, version, help, nil
}

func setColor(v string) error {
	switch v {
	case "auto", "always", "never":
		globals.color = v
		return nil
	}
	return usagef("invalid value '%s' for '--color <WHEN>': want auto, always or never", v)
}

// colorFlag is --color after the subcommand.
type colorFlag struct{}

func (colorFlag) String() string     { return globals.color }
func (colorFlag) Set(v string) error { return setColor(v) }
func (colorFlag) Type() string       { return "string" }

// commonFlags are -q and -v given after the subcommand; merge adds them
// to those given before it.
type commonFlags struct {
	quiet   bool
	verbose int
}

// addGlobalFlags declares -q, -v and --color on a subcommand's flag set.
func addGlobalFlags(fs *flag.FlagSet) *commonFlags {
	c := &commonFlags{}
	fs.BoolVarP(&c.quiet, "quiet", "q", false, "Print only warnings and errors (the exit status still says what was found)")
	fs.CountVarP(&c.verbose, "verbose", "v", "Say more (-vv: more still)")
	fs.Var(colorFlag{}, "color", "Coloring: `WHEN` is auto, always or never (default: CARGO_TERM_COLOR, else auto)")
	return c
}

func (c *commonFlags) merge() {
	globals.quiet = globals.quiet || c.quiet
	globals.verbose += c.verbose
}

// logMode is the report's verbosity.
func logMode() shim.LogMode {
	switch {
	case globals.quiet:
		return shim.LogQuiet
	case globals.verbose >= 2:
		return shim.LogDebug
	case globals.verbose == 1:
		return shim.LogVerbose
	}
	return shim.LogInfo
}

// getenv is os.Getenv with --color in place of CARGO_TERM_COLOR.
func getenv(k string) string {
	if k == "CARGO_TERM_COLOR" && globals.color != "" {
		return globals.color
	}
	if k == "NO_COLOR" && globals.color == "always" {
		return ""
	}
	return os.Getenv(k)
}
