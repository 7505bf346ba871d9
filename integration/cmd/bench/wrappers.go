package main

// The floors of any drop-in `cargo` written in Go, measured beside the
// user-facing rows: what a wrapper that does no work at all adds to plain
// cargo's no-op. goExecSrc only execs cargo; goTwoSrc first starts a second
// Go process that lives until cargo exits, the shape of the drop-in's lock
// holder (a flock must outlive the exec in a process that is not cargo's,
// or cargo's children would inherit it). Neither checks or locks anything.

// wrapperEnv names the cargo the wrappers exec.
const wrapperEnv = "BENCH_WRAPPED_CARGO"

const goExecSrc = `package main

import (
	"os"
	"syscall"
)

func main() {
	real := os.Getenv("` + wrapperEnv + `")
	syscall.Exec(real, append([]string{real}, os.Args[1:]...), os.Environ())
	os.Exit(101)
}
`

const goTwoSrc = `package main

import (
	"os"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--child" {
		var b [1]byte
		os.Stdin.Read(b[:]) // end of file once the exec'd cargo has exited
		return
	}
	var p [2]int
	if syscall.Pipe2(p[:], syscall.O_CLOEXEC) != nil {
		os.Exit(101)
	}
	self, _ := os.Executable()
	if _, err := syscall.ForkExec(self, []string{self, "--child"}, &syscall.ProcAttr{Files: []uintptr{uintptr(p[0]), 1, 2}}); err != nil {
		os.Exit(101)
	}
	syscall.Close(p[0])
	// The write end goes through the exec into cargo: the child's stdin
	// ends when cargo (and whatever inherited it) has exited.
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[1]), syscall.F_SETFD, 0)
	real := os.Getenv("` + wrapperEnv + `")
	syscall.Exec(real, append([]string{real}, os.Args[1:]...), os.Environ())
	os.Exit(101)
}
`
