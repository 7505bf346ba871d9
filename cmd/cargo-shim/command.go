//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/events"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// command is one subcommand: everything about it lives in the file that
// registers it. A new subcommand is one file, e.g. uninstall.go:
//
//	func init() {
//		register(&command{
//			Name: "uninstall", Summary: "one line for the command list",
//			Args: "[OPTIONS]", Help: "paragraphs after the options",
//			Registry: true, JSON: true, // --registry and --json, if wanted
//			Setup: func(fs *flag.FlagSet) func(*ctx) error {
//				home := fs.String("home", "", "The `DIR` to restore")
//				return func(c *ctx) error {
//					if err := c.NeedRegistry(); err != nil {
//						return err // after the command's own usage checks
//					}
//					...print with c.Out (stdout) / c.Err (stderr), or
//					admin.WriteJSON(c.Stdout, rep) when c.JSON...
//				}
//			},
//		})
//	}
//
// Help, usage errors, completions and the command list follow from it; a
// usage error is usagef(...) (exit 2), errProblems exits 1, any other error
// prints as cargo's ("error:", "Caused by:") and exits 2. Every non-switch
// flag's usage names its value in backquotes (`DIR`, `FILE`, `DURATION`);
// durations use durationVar (30d, 2w). Add a script under
// testdata/script for its text and JSON.
type command struct {
	Name    string
	Summary string // one line, for `cargo-shim --help`
	Args    string // after "cargo-shim NAME", e.g. "[OPTIONS]"
	Help    string // paragraphs after the options
	// Registry adds --registry and resolves it (ctx.NeedRegistry says
	// whether it is one); JSON adds --json.
	Registry, JSON bool
	// MaxArgs is how many positional arguments run may find in fs.Args().
	MaxArgs int
	// Setup declares the command's own flags and returns what runs once
	// they are parsed.
	Setup func(fs *flag.FlagSet) func(*ctx) error
}

// ctx is what a command's run gets.
type ctx struct {
	cmd      *command
	Stdout   io.Writer
	Out      *shim.Logger // report lines, on stdout
	Err      *shim.Logger // warnings and waits, on stderr
	JSON     bool
	Cfg      shim.Config
	Reg      store.Registry
	Explicit bool // the registry was named (flag or CARGO_SHIM_REGISTRY)
	// Events is the event log the store's changes go to (nil: off).
	Events *events.Log
	// Mismatch: CARGO_SHIM_REGISTRY contradicts $CARGO_HOME/registry.
	Mismatch string
	// RegErr says why Reg is not a cargo registry; a command returns it
	// (through NeedRegistry) once its own flags are checked.
	RegErr error
}

// NeedRegistry is the error to return when the registry is not one.
func (x *ctx) NeedRegistry() error { return x.RegErr }

var commands = map[string]*command{}

// register adds a subcommand; each file calls it from init.
func register(c *command) { commands[c.Name] = c }

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// usageError is a command line the command cannot run: exit 2, with the
// command's usage line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errProblems makes the exit status 1 after a report was printed.
var errProblems = errors.New("problems found")

// flags are a command's parsed command line.
type flags struct {
	fs       *flag.FlagSet
	run      func(*ctx) error
	help     *bool
	registry string
	json     bool
	common   *commonFlags
}

// flagSet declares the command's own flags, then the common ones, in the
// order help lists them.
func (c *command) flagSet() *flags {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.Usage = func() {}
	f := &flags{fs: fs, run: c.Setup(fs)}
	if c.Registry {
		fs.StringVar(&f.registry, "registry", "", "The shared registry `DIR` (default: $CARGO_SHIM_REGISTRY, else $CARGO_HOME/registry)")
	}
	if c.JSON {
		fs.BoolVar(&f.json, "json", false, "Print a JSON report on stdout (docs/admin.md: JSON output)")
	}
	f.common = addGlobalFlags(fs)
	f.help = fs.BoolP("help", "h", false, "Print help")
	return f
}

// execute parses args and runs the command. It returns the exit status.
func (c *command) execute(args []string, stdout, stderr *os.File) int {
	f := c.flagSet()
	fs, registry := f.fs, &f.registry
	err := fs.Parse(args)
	f.common.merge()
	errLog := newLogger(stderr)
	if err != nil {
		return c.usageFailure(errLog, flagError(fs, err))
	}
	if *f.help {
		c.printHelp(stdout)
		return 0
	}
	if fs.NArg() > c.MaxArgs {
		return c.usageFailure(errLog, usagef("unexpected argument '%s' found", fs.Arg(c.MaxArgs)))
	}
	x := &ctx{cmd: c, Stdout: stdout, Out: newLogger(stdout), Err: errLog, JSON: f.json}
	cwd, _ := os.Getwd()
	var cfgErr error
	x.Cfg, cfgErr = shim.LoadConfig(os.Getenv, cwd)
	if cfgErr != nil && c.Registry {
		// A bad CARGO_SHIM_LOCK_TIMEOUT must not become the default silently.
		printError(errLog, cfgErr)
		return 2
	}
	x.Explicit = *registry != "" || os.Getenv("CARGO_SHIM_REGISTRY") != ""
	// What the drop-in would make of this environment, whatever --registry
	// this command looks at.
	x.Mismatch = x.Cfg.RegistryMismatch()
	if *registry != "" {
		x.Cfg.Registry, _ = filepath.Abs(*registry)
	}
	if c.Registry {
		x.Reg = store.Registry{Root: x.Cfg.Registry}
		// What the command's store calls change (gc, repair) is logged as
		// the drop-in logs it, and its removals counted in the stats.
		if x.Events = shim.EventLog(x.Cfg, os.Getenv, "cargo-shim "+c.Name, errLog); x.Events != nil {
			x.Reg.Events = x.Events
		}
		x.RegErr = checkRegistry(x.Cfg.Registry)
		if x.RegErr == nil {
			// Held by descriptor from here on: nothing below it is followed.
			x.RegErr = x.Reg.Open()
		}
		if x.RegErr == nil {
			x.Err.Verbose("Registry", x.Cfg.Registry)
		}
	}
	err = f.run(x)
	if x.Events != nil && x.RegErr == nil {
		if cerr := admin.CountRemovals(x.Reg, x.Events, time.Now()); cerr != nil {
			errLog.Debug("cannot count removals: %v", cerr)
		}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errProblems):
		return 1
	case errors.As(err, &ue):
		return c.usageFailure(errLog, err)
	default:
		printError(errLog, err)
		return 2
	}
}

// checkRegistry refuses a directory that is not a cargo registry: a
// project directory or a typo would otherwise verify as "0 crates, no
// problems". cargo creates index/ and cache/ (and src/, which a project
// has too: it counts only with a registry's subdirectory in it, such as
// index.crates.io-1949cf8c6b5b557f); the shim creates .cargo-shim/.
func checkRegistry(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not a cargo registry: it does not exist", dir)
	}
	if err != nil {
		return fmt.Errorf("%s is not a cargo registry: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a cargo registry: not a directory", dir)
	}
	for _, marker := range []string{"index", "cache", ".cargo-shim"} {
		if fi, err := os.Stat(filepath.Join(dir, marker)); err == nil && fi.IsDir() {
			return nil
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "src"))
	for _, e := range ents {
		if e.IsDir() && regdirName.MatchString(e.Name()) {
			return nil
		}
	}
	return fmt.Errorf("%s is not a cargo registry: it has none of index/, cache/, src/<registry>-<hash>/ or .cargo-shim/ (a registry is the registry/ directory of a CARGO_HOME)", dir)
}

// regdirName is cargo's name for one registry's subdirectory: the host and
// a 16-digit hash.
var regdirName = regexp.MustCompile(`^.+-[0-9a-f]{16}$`)

func (c *command) usageFailure(log *shim.Logger, err error) int {
	log.Error("%v", err)
	fmt.Fprintf(log.W, "\nUsage: cargo-shim %s %s\n\nFor more information, try '--help'.\n", c.Name, c.Args)
	return 2
}

// flagError words pflag's parse errors as cargo's (clap's) are worded.
func flagError(fs *flag.FlagSet, err error) error {
	var ne *flag.NotExistError
	var vr *flag.ValueRequiredError
	var iv *flag.InvalidValueError
	var is *flag.InvalidSyntaxError
	switch {
	case errors.As(err, &ne):
		name := "--" + ne.GetSpecifiedName()
		if s := ne.GetSpecifiedShortnames(); s != "" {
			name = "-" + s
		}
		return usagef("unexpected argument '%s' found", name)
	case errors.As(err, &vr):
		return usagef("a value is required for '%s' but none was supplied", flagSpec(vr.GetFlag()))
	case errors.As(err, &iv):
		return usagef("invalid value '%s' for '%s': %v", iv.GetValue(), flagSpec(iv.GetFlag()), errors.Unwrap(iv))
	case errors.As(err, &is):
		return usagef("unexpected argument '%s' found", is.GetSpecifiedFlag())
	}
	return usageError{err.Error()}
}

// flagSpec is "--max-age <DURATION>", as help shows it.
func flagSpec(f *flag.Flag) string {
	s := "--" + f.Name
	if name, _ := flag.UnquoteUsage(f); f.Value.Type() != "bool" && f.Value.Type() != "count" && name != "" {
		s += " <" + name + ">"
	}
	return s
}

func (c *command) printHelp(w io.Writer) {
	fs := c.flagSet().fs
	fmt.Fprintf(w, "%s\n\nUsage: cargo-shim %s %s\n\nOptions:\n", c.Summary, c.Name, c.Args)
	var rows [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		left := "    "
		if f.Shorthand != "" {
			left = "-" + f.Shorthand + ", "
		}
		_, usage := flag.UnquoteUsage(f)
		rows = append(rows, [2]string{left + flagSpec(f), usage})
	})
	printColumns(w, rows)
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Help))
	}
}

// printColumns writes rows as "  left  right", the right column aligned.
func printColumns(w io.Writer, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}

// newLogger writes cargo-style lines to f, coloured as CARGO_TERM_COLOR,
// NO_COLOR and f being a terminal say.
func newLogger(f *os.File) *shim.Logger {
	l := shim.NewLogger(f, logMode(), getenv)
	l.Bare = true
	return l
}
