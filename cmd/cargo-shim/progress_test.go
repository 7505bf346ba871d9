//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPty returns a pseudo-terminal's master and its slave.
func openPty(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// readUntil reads the terminal until want appears and returns what came.
func readUntil(t *testing.T, r *bufio.Reader, want string) string {
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("reading the terminal for %q: %v (so far %q)", want, err, got.String())
		}
		got.WriteByte(b)
	}
	return got.String()
}

// Rule: an operation on a terminal shows a progress line once it has run
// for progressAfter, and clears it when done; one that ends sooner draws
// nothing, and -q draws nothing ever.
func TestProgressLineOnATerminal(t *testing.T) {
	master, slave := openPty(t)
	saved := os.Stderr
	os.Stderr = slave
	t.Cleanup(func() { os.Stderr = saved; globals = globalOptions{} })
	r := bufio.NewReader(master)

	working("Collecting")()
	fmt.Fprint(slave, "END1")
	if got := readUntil(t, r, "END1"); got != "END1" {
		t.Fatalf("a short operation drew %q", got)
	}

	stop := working("Collecting")
	got := readUntil(t, r, "  Collecting ")
	stop()
	fmt.Fprint(slave, "END2")
	if rest := readUntil(t, r, "END2"); !strings.Contains(rest, "\r\x1b[K") {
		t.Fatalf("the progress line %q was not cleared: %q", got, rest)
	}

	globals.quiet = true
	if progress("Checking") != nil {
		t.Fatal("-q still draws progress")
	}
	globals.quiet = false
	if progress("Checking") == nil {
		t.Fatal("no progress on a terminal")
	}
}
