//go:build !linux

// Command cargo is cargo-shim's drop-in. Its protection needs Linux
// (openat2, pidfd, /proc/locks, renameat2); elsewhere it only finds the real
// cargo and runs it untouched, so that a PATH shared with Linux machines, or
// a laptop that opted in, keeps working.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// execedEnv is the shim's recursion guard (shim.ExecedEnv on Linux): the
// program a shim ran as "the real cargo". A second copy of the shim that
// finds itself named there searches PATH only after its own entry.
const execedEnv = "CARGO_SHIM_EXECED"

func main() {
	self := resolvedSelf()
	real, err := findRealCargo(self)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(101)
	}
	if verbose(os.Args[1:]) {
		fmt.Fprintf(os.Stderr, "note: cargo-shim protects a shared registry on Linux only; on %s it runs %s untouched\n", runtime.GOOS, real)
	}
	env := append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, execedEnv+"=")
	}), execedEnv+"="+real)
	os.Exit(runCargo(real, os.Args, env))
}

// verbose is cargo's -v (or CARGO_SHIM_LOG=verbose/debug): the one case in
// which the pass-through says so.
func verbose(args []string) bool {
	switch os.Getenv("CARGO_SHIM_LOG") {
	case "verbose", "debug":
		return true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--verbose" || (len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.Trim(a[1:], "v") == "") {
			return true
		}
	}
	return os.Getenv("CARGO_TERM_VERBOSE") == "true"
}

// findRealCargo is CARGO_SHIM_REAL_CARGO, else the first cargo on PATH that
// is not this program (after this program's own entry when another shim
// ran this one as the real cargo).
func findRealCargo(self string) (string, error) {
	selfInfo, _ := os.Stat(self)
	if p := os.Getenv("CARGO_SHIM_REAL_CARGO"); p != "" {
		return p, nil
	}
	skipping := selfInfo != nil && sameFile(os.Getenv(execedEnv), selfInfo)
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		for _, name := range cargoNames() {
			cand := filepath.Join(dir, name)
			fi, err := os.Stat(cand)
			if err != nil || fi.IsDir() {
				continue
			}
			if selfInfo != nil && os.SameFile(fi, selfInfo) {
				skipping = false
				continue
			}
			if skipping {
				continue
			}
			return filepath.Abs(cand)
		}
	}
	return "", fmt.Errorf("cannot find the real cargo: no `cargo` on PATH other than the shim (%s); install cargo or set CARGO_SHIM_REAL_CARGO", self)
}

func sameFile(path string, fi os.FileInfo) bool {
	if path == "" {
		return false
	}
	other, err := os.Stat(path)
	return err == nil && os.SameFile(other, fi)
}

func cargoNames() []string {
	if runtime.GOOS == "windows" {
		return []string{"cargo.exe", "cargo.cmd", "cargo.bat"}
	}
	return []string{"cargo"}
}

func resolvedSelf() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		return r
	}
	return exe
}
