//go:build linux

package main

import (
	"fmt"
	"io"
	"strings"

	flag "github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:    "completion",
		Summary: "Print a shell completion script (bash, zsh or fish)",
		Args:    "<SHELL>",
		MaxArgs: 1,
		Help: `
Load it from the shell's startup file, or install it where the shell
looks for completions:

  cargo-shim completion bash > /etc/bash_completion.d/cargo-shim
  cargo-shim completion zsh  > "${fpath[1]}/_cargo-shim"
  cargo-shim completion fish > ~/.config/fish/completions/cargo-shim.fish

The scripts are generated from the command table, so they know every
subcommand and option of this version.`,
		Setup: func(fs *flag.FlagSet) func(*ctx) error {
			return func(c *ctx) error {
				args := fs.Args()
				if len(args) != 1 {
					return usagef("one SHELL is required: bash, zsh or fish")
				}
				gen, ok := completers[args[0]]
				if !ok {
					return usagef("invalid value '%s' for '<SHELL>': want bash, zsh or fish", args[0])
				}
				gen(c.Stdout)
				return nil
			}
		},
	})
}

var completers = map[string]func(io.Writer){"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}

// flagInfo is what a completion needs of one option.
type flagInfo struct {
	name, short, usage string
	value              string // "" for a switch; "DIR", "FILE", ... otherwise
}

func flagsOf(c *command) []flagInfo {
	var out []flagInfo
	c.flagSet().fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		if f.Value.Type() == "bool" {
			value = ""
		}
		out = append(out, flagInfo{f.Name, f.Shorthand, usage, value})
	})
	return out
}

func bashCompletion(w io.Writer) {
	names := commandNames()
	fmt.Fprintf(w, `# bash completion for cargo-shim (cargo-shim completion bash)
_cargo_shim() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%s help --help --version" -- "$cur"))
        return
    fi
    case "$prev" in
        --registry) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --lockfile) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    case "${COMP_WORDS[1]}" in
`, strings.Join(names, " "))
	for _, n := range names {
		var opts []string
		for _, f := range flagsOf(commands[n]) {
			opts = append(opts, "--"+f.name)
		}
		if n == "completion" {
			opts = append(opts, "bash", "zsh", "fish")
		}
		fmt.Fprintf(w, "        %s) opts=%q ;;\n", n, strings.Join(opts, " "))
	}
	fmt.Fprintf(w, `        help) opts=%q ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _cargo_shim cargo-shim
`, strings.Join(names, " "))
}

func zshCompletion(w io.Writer) {
	names := commandNames()
	fmt.Fprint(w, "#compdef cargo-shim\n# zsh completion for cargo-shim (cargo-shim completion zsh)\n_cargo_shim() {\n    local -a commands\n    commands=(\n")
	for _, n := range names {
		fmt.Fprintf(w, "        '%s:%s'\n", n, zshQuote(commands[n].Summary))
	}
	fmt.Fprint(w, "        'help:Print help of a command'\n    )\n    if (( CURRENT == 2 )); then\n        _describe command commands\n        return\n    fi\n    case $words[2] in\n")
	for _, n := range names {
		fmt.Fprintf(w, "        %s) _arguments \\\n", n)
		for _, f := range flagsOf(commands[n]) {
			spec := fmt.Sprintf("--%s[%s]", f.name, zshQuote(f.usage))
			switch f.value {
			case "":
			case "DIR":
				spec += ":dir:_files -/"
			case "FILE":
				spec += ":file:_files"
			default:
				spec += ":" + strings.ToLower(f.value) + ": "
			}
			fmt.Fprintf(w, "            '%s' \\\n", spec)
		}
		if n == "completion" {
			fmt.Fprint(w, "            '1:shell:(bash zsh fish)' \\\n")
		}
		fmt.Fprint(w, "            ;;\n")
	}
	fmt.Fprintf(w, "        help) _arguments '1:command:(%s)' ;;\n    esac\n}\n_cargo_shim \"$@\"\n", strings.Join(names, " "))
}

// zshQuote makes s safe inside a single-quoted _arguments spec.
func zshQuote(s string) string {
	return strings.NewReplacer("'", "'\\''", "[", "(", "]", ")", ":", "\\:").Replace(s)
}

func fishCompletion(w io.Writer) {
	names := commandNames()
	fmt.Fprint(w, "# fish completion for cargo-shim (cargo-shim completion fish)\ncomplete -c cargo-shim -f\n")
	for _, n := range names {
		fmt.Fprintf(w, "complete -c cargo-shim -n __fish_use_subcommand -a %s -d %s\n", n, fishQuote(commands[n].Summary))
	}
	fmt.Fprintf(w, "complete -c cargo-shim -n __fish_use_subcommand -a help -d 'Print help of a command'\n")
	for _, n := range names {
		cond := fishQuote("__fish_seen_subcommand_from " + n)
		for _, f := range flagsOf(commands[n]) {
			line := fmt.Sprintf("complete -c cargo-shim -n %s -l %s", cond, f.name)
			if f.short != "" {
				line += " -s " + f.short
			}
			switch f.value {
			case "":
			case "DIR":
				line += " -r -a '(__fish_complete_directories)'"
			case "FILE":
				line += " -r -F"
			default:
				line += " -r"
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishQuote(f.usage))
		}
	}
	fmt.Fprintf(w, "complete -c cargo-shim -n %s -a 'bash zsh fish'\n", fishQuote("__fish_seen_subcommand_from completion"))
	fmt.Fprintf(w, "complete -c cargo-shim -n %s -a %s\n", fishQuote("__fish_seen_subcommand_from help"), fishQuote(strings.Join(names, " ")))
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
