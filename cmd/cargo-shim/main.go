//go:build linux

// Command cargo-shim is the admin command for a shared cargo registry.
// Also reachable as `cargo shim ...`. Each subcommand is a file of its own
// that registers a command (see command.go); this file dispatches.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/cargo-shim/cargo-shim/shim"
)

const about = "Look after a cargo registry shared by many CI runners"

func main() {
	// A soft limit well under the 30 MB budget: a 4,000-crate verify reads
	// 136k file entries, and the collector should run before RSS grows.
	debug.SetMemoryLimit(20 << 20)
	args := os.Args[1:]
	// `cargo shim verify` runs us as `cargo-shim shim verify`.
	if len(args) > 0 && args[0] == "shim" {
		args = args[1:]
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr *os.File) int {
	globals = globalOptions{}
	args, version, help, err := parseGlobals(args)
	if err != nil {
		newLogger(stderr).Error("%v", err)
		fmt.Fprintf(stderr, "\nUsage: cargo-shim <COMMAND> [OPTIONS]\n\nFor more information, try '--help'.\n")
		return 2
	}
	switch {
	case version:
		fmt.Fprintln(stdout, "cargo-shim", shim.LongVersion())
		return 0
	case help || len(args) == 0:
		printTopHelp(stdout)
		return 0
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, "cargo-shim", shim.LongVersion())
		return 0
	case "help":
		return helpCommand(args[1:], stdout, stderr)
	}
	c, ok := commands[args[0]]
	if !ok {
		return unknownCommand(args[0], stderr)
	}
	return c.execute(args[1:], stdout, stderr)
}

// helpCommand is `cargo-shim help [COMMAND]`; `help help` is the top help,
// as cargo's.
func helpCommand(args []string, stdout, stderr *os.File) int {
	if len(args) == 0 || args[0] == "help" {
		printTopHelp(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		return unknownCommand(args[0], stderr)
	}
	c.printHelp(stdout)
	return 0
}

func unknownCommand(name string, stderr *os.File) int {
	log := newLogger(stderr)
	if len(name) > 0 && name[0] == '-' {
		log.Error("unexpected argument '%s' found", name)
	} else {
		log.Error("no such command: `%s`", name)
	}
	fmt.Fprintf(stderr, "\nhelp: view all commands with `cargo-shim --help`\n")
	return 2
}

func printTopHelp(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage: cargo-shim <COMMAND> [OPTIONS]\n       cargo shim <COMMAND> [OPTIONS]\n\nCommands:\n", about)
	var rows [][2]string
	for _, n := range commandNames() {
		rows = append(rows, [2]string{n, commands[n].Summary})
	}
	rows = append(rows, [2]string{"help", "Print this message or the help of the given command"})
	printColumns(w, rows)
	fmt.Fprint(w, `
Options:
  -V, --version       Print version
  -q, --quiet         Print only warnings and errors (the exit status still says what was found)
  -v, --verbose       Say more (-vv: more still)
      --color <WHEN>  Coloring: auto, always, never (default: CARGO_TERM_COLOR, else auto)
  -h, --help          Print help

The registry is --registry, else $CARGO_SHIM_REGISTRY, else
$CARGO_HOME/registry (CARGO_HOME defaults to ~/.cargo).
Durations read 90s, 10m, 72h, 30d, 2w or 1w3d.
Exit status: 0 ok; 1 problems found or left (status: something needs
attention); 2 usage error, not a registry, or a failure.

See 'cargo-shim help <COMMAND>' for more on a command.
`)
}
