//go:build linux

// Command cargo is cargo-shim's drop-in: put it first on PATH and it plans,
// locks, checks and repairs the registry crates a command uses, then execs
// the real cargo.
package main

import (
	"os"

	"github.com/cargo-shim/cargo-shim/shim"
)

func main() {
	os.Exit(shim.Main(os.Args[1:]))
}
