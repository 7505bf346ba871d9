// Command cargo-shim is the admin command for a shared cargo registry.
package main

import (
	"fmt"
	"os"

	"github.com/cargo-shim/cargo-shim/shim"
)

func main() {
	args := os.Args[1:]
	// `cargo shim verify` runs us as `cargo-shim shim verify`.
	if len(args) > 0 && args[0] == "shim" {
		args = args[1:]
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-V" || args[0] == "version") {
		fmt.Println("cargo-shim", shim.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: cargo-shim [--version] <verify|repair|gc|status> [flags]")
	os.Exit(2)
}
