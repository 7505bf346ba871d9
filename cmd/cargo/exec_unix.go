//go:build !linux && !windows

package main

import (
	"fmt"
	"os"
	"syscall"
)

// runCargo replaces this process with the real cargo: same pid, stdio,
// signals and exit status, as on Linux.
func runCargo(real string, args, env []string) int {
	err := syscall.Exec(real, append([]string{real}, args[1:]...), env)
	fmt.Fprintf(os.Stderr, "error: cannot run %s: %v\n", real, err)
	return 101
}
