// Command cargo-shim is the admin command for a shared cargo registry:
// verify, repair, gc and status. Also reachable as `cargo shim ...`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	flag "github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

const usage = `cargo-shim: look after a cargo registry shared by many runners

Usage:
  cargo-shim verify [--registry DIR] [--lockfile FILE]... [--fast|--deep] [--json]
  cargo-shim repair [--registry DIR] [--lockfile FILE]... [--deep] [--json]
  cargo-shim gc     [--registry DIR] --max-age DURATION [--crate-max-age DURATION] [--dry-run] [--json]
  cargo-shim status [--registry DIR] [--json]
  cargo-shim init   --group GROUP [--registry DIR] [--json]
  cargo-shim uninstall [--cargo-home DIR]... [--dry-run] [--json]
  cargo-shim --version

Each subcommand takes --help. Exit status: 0 ok, 1 problems found or left,
2 usage or internal error. The registry defaults to CARGO_SHIM_REGISTRY,
else $CARGO_HOME/registry (CARGO_HOME defaults to ~/.cargo).
`

// errProblems makes the exit status 1 after a report was printed.
var errProblems = errors.New("problems found")

func main() {
	// A soft limit well under the 30 MB budget: a 4,000-crate verify reads
	// 136k file entries, and the collector should run before RSS grows.
	debug.SetMemoryLimit(20 << 20)
	args := os.Args[1:]
	// `cargo shim verify` runs us as `cargo-shim shim verify`.
	if len(args) > 0 && args[0] == "shim" {
		args = args[1:]
	}
	os.Exit(run(args))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-V" || args[0] == "version" {
		fmt.Println("cargo-shim", shim.Version)
		return 0
	}
	cmds := map[string]func([]string) error{"verify": verify, "repair": repair, "gc": gc, "status": status, "init": initCmd, "uninstall": uninstall}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "cargo-shim: unknown subcommand %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errProblems):
		return 1
	case errors.As(err, new(usageError)):
		shim.Fprintf(os.Stderr, "cargo-shim %s: %v\n", args[0], err)
		return 2
	default:
		shim.Fprintf(os.Stderr, "error: cargo-shim %s: %v\n", args[0], err)
		return 2
	}
}

type usageError struct{ error }

type common struct {
	fs       *flag.FlagSet
	registry string
	json     bool
	log      *shim.Logger
}

func newCommon(name, synopsis string) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.registry, "registry", "", "the shared registry directory (default: CARGO_SHIM_REGISTRY, else $CARGO_HOME/registry)")
	c.fs.BoolVar(&c.json, "json", false, "print a JSON report on stdout (see README: JSON output)")
	c.fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: cargo-shim %s\n\nFlags:\n%s", synopsis, c.fs.FlagUsages())
	}
	return c
}

func (c *common) parse(args []string) (store.Registry, shim.Config, error) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return store.Registry{}, shim.Config{}, err
		}
		return store.Registry{}, shim.Config{}, usageError{err}
	}
	if c.fs.NArg() > 0 {
		return store.Registry{}, shim.Config{}, usageError{fmt.Errorf("unexpected argument %q", c.fs.Arg(0))}
	}
	cwd, _ := os.Getwd()
	cfg, err := shim.LoadConfig(os.Getenv, cwd)
	if err != nil {
		// A bad CARGO_SHIM_LOCK_TIMEOUT must not become the default silently.
		return store.Registry{}, cfg, err
	}
	if c.registry != "" {
		cfg.Registry = c.registry
	}
	c.log = shim.NewLogger(os.Stderr, shim.LogInfo, os.Getenv)
	if fi, err := os.Stat(cfg.Registry); (err != nil || !fi.IsDir()) && c.fs.Name() != "status" && c.fs.Name() != "init" {
		return store.Registry{}, cfg, fmt.Errorf("registry %s is not a directory", cfg.Registry)
	}
	reg := store.Registry{Root: cfg.Registry}
	// Held by descriptor from here on: nothing below it is followed.
	if err := reg.Open(); err != nil && c.fs.Name() != "status" && c.fs.Name() != "init" {
		return store.Registry{}, cfg, err
	}
	return reg, cfg, nil
}

// parseTargets is parse, then the instances the Cargo.lock files name (every
// one in the registry without any).
func (c *common) parseTargets(args, lockfiles []string) (store.Registry, shim.Config, []store.Instance, error) {
	reg, cfg, err := c.parse(args)
	if err != nil {
		return reg, cfg, nil, err
	}
	targets, err := admin.Targets(reg, lockfiles)
	return reg, cfg, targets, err
}

// write prints a report: JSON with --json, else as text does.
func (c *common) write(rep any, text func()) {
	if c.json {
		admin.WriteJSON(os.Stdout, rep)
		return
	}
	text()
}

// progress draws "Checking n/total" on stderr when it is a terminal.
func progress(verb string) func(done, total int) {
	if _, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	last := time.Time{}
	return func(done, total int) {
		if total < 200 || (time.Since(last) < 100*time.Millisecond && done < total) {
			return
		}
		last = time.Now()
		fmt.Fprintf(os.Stderr, "\r%12s %d/%d", verb, done, total)
		if done == total {
			fmt.Fprint(os.Stderr, "\r\x1b[K")
		}
	}
}

func verify(args []string) error {
	c := newCommon("verify", "verify [--registry DIR] [--lockfile FILE]... [--fast|--deep] [--json]")
	lockfiles := c.fs.StringArray("lockfile", nil, "check only the crates this Cargo.lock names, against its checksums (repeatable)")
	deep := c.fs.Bool("deep", false, "also check each tarball's sha256 and every file's content against its tarball")
	fast := c.fs.Bool("fast", false, "trust directories whose recorded stamps are unchanged, as every drop-in run does (misses files rewritten in place)")
	reg, _, targets, err := c.parseTargets(args, *lockfiles)
	if err != nil {
		return err
	}
	level := store.Files
	switch {
	case *deep && *fast:
		return usageError{errors.New("--fast and --deep exclude each other")}
	case *deep:
		level = store.Deep
	case *fast:
		level = store.Fast
	}
	rep := admin.Verify(reg, targets, level, progress("Checking"))
	c.write(rep, func() { admin.PrintVerify(c.log, os.Stdout, rep) })
	if len(rep.Problems) > 0 {
		return errProblems
	}
	return nil
}

func repair(args []string) error {
	c := newCommon("repair", "repair [--registry DIR] [--lockfile FILE]... [--deep] [--json]")
	lockfiles := c.fs.StringArray("lockfile", nil, "repair only the crates this Cargo.lock names (repeatable)")
	deep := c.fs.Bool("deep", false, "also repair files whose content differs from the tarball")
	reg, cfg, targets, err := c.parseTargets(args, *lockfiles)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if cfg.LockTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.LockTimeout)
		defer cancel()
	}
	rep, err := admin.Repair(ctx, reg, targets, *deep, func(i store.Instance, what store.WaitFor) {
		c.log.Status("Blocking", fmt.Sprintf("waiting for lock on %s %s (in use by a running build)", what, i.Crate))
	}, progress("Checking"))
	c.write(rep, func() { admin.PrintRepair(c.log, os.Stdout, rep) })
	if err != nil {
		c.log.Warn("%v", err)
	}
	if len(rep.Left) > 0 || err != nil {
		return errProblems
	}
	return nil
}

func gc(args []string) error {
	c := newCommon("gc", "gc [--registry DIR] --max-age DURATION [--crate-max-age DURATION] [--dry-run] [--json]")
	maxAge := c.fs.Duration("max-age", -1, "remove extractions unused for longer than this (e.g. 72h); required")
	crateMaxAge := c.fs.Duration("crate-max-age", -1, "also remove .crate tarballs unused for longer than this")
	dry := c.fs.Bool("dry-run", false, "say what would be removed, remove nothing")
	reg, _, err := c.parse(args)
	if err != nil {
		return err
	}
	if *maxAge < 0 {
		return usageError{errors.New("--max-age is required (a duration such as 72h; 0s removes every crate no build holds)")}
	}
	rep, err := admin.GC(reg, admin.GCOptions{MaxAge: *maxAge, CrateMaxAge: *crateMaxAge, Tarballs: *crateMaxAge >= 0, DryRun: *dry}, time.Now())
	c.write(rep, func() { admin.PrintGC(c.log, os.Stdout, rep) })
	if err != nil {
		c.log.Warn("%v", err)
		return errProblems
	}
	return nil
}

func status(args []string) error {
	c := newCommon("status", "status [--registry DIR] [--json]")
	reg, cfg, err := c.parse(args)
	if err != nil {
		return err
	}
	st := admin.Status(reg, cfg.CargoHome)
	if c.json {
		return admin.WriteJSON(os.Stdout, st)
	}
	admin.PrintStatus(os.Stdout, st)
	return nil
}
