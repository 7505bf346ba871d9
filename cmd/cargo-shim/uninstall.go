package main

import (
	"errors"
	"fmt"
	"os"

	flag "github.com/spf13/pflag"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/admin"
)

const uninstallSynopsis = "uninstall [--cargo-home DIR]... [--dry-run] [--json]"

// uninstall restores homes' cargo lock files; it needs no registry.
func uninstall(args []string) error {
	fs := flag.NewFlagSet("uninstall", flag.ContinueOnError)
	homes := fs.StringArray("cargo-home", nil, "a CARGO_HOME to restore (repeatable; default: CARGO_HOME, else ~/.cargo)")
	dry := fs.Bool("dry-run", false, "say what would be restored, change nothing")
	asJSON := fs.Bool("json", false, "print a JSON report on stdout (see README: JSON output)")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: cargo-shim %s\n\nGives each home back the plain cargo lock files the shim replaced with links\n(.package-cache, .package-cache-mutate). See README: Uninstall.\n\nFlags:\n%s", uninstallSynopsis, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if len(*homes) == 0 {
		cwd, _ := os.Getwd()
		cfg, _ := shim.LoadConfig(os.Getenv, cwd)
		*homes = []string{cfg.CargoHome}
	}
	rep := admin.Uninstall(*homes, *dry)
	if *asJSON {
		admin.WriteJSON(os.Stdout, rep)
	} else {
		admin.PrintUninstall(shim.NewLogger(os.Stderr, shim.LogInfo, os.Getenv), os.Stdout, rep)
	}
	if rep.Left() > 0 {
		return errProblems
	}
	return nil
}
