//go:build !linux

// Command cargo-shim is the admin command for a shared cargo registry. It
// needs Linux (openat2, pidfd, /proc/locks, renameat2); elsewhere it says so.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "error: cargo-shim supports Linux only (this is %s/%s)\n\nThe drop-in cargo runs the real cargo untouched here; a shared registry needs its admin command on a Linux host.\n", runtime.GOOS, runtime.GOARCH)
	os.Exit(2)
}
