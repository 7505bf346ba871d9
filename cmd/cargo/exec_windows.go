//go:build windows

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
)

// runCargo runs the real cargo with this process's stdio and returns its
// exit code (Windows has no exec). Ctrl-C reaches cargo through the console;
// this process ignores it and waits for cargo to finish.
func runCargo(real string, args, env []string) int {
	signal.Ignore(os.Interrupt)
	cmd := exec.Command(real, args[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "error: cannot run %s: %v\n", real, err)
	return 101
}
