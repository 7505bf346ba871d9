package store

import (
	"errors"
	"fmt"
)

// A Cargo.lock comes from the project being built, which may be hostile. A
// TOML parser's time and memory grow with nesting: 8,000 nested inline
// tables in 32 KB kept BurntSushi/toml busy for 44 s and 1.35 GB, on every
// run, while cargo rejects the file at once. The pre-scan bounds the input
// before any parser sees it: size, bracket nesting and dotted-key depth.
// Cargo writes none of these shapes (tables of strings and arrays of
// strings, nesting 2), so the limits are far above any real Cargo.lock.
const (
	maxLockSize  = 16 << 20
	maxLockDepth = 16
	maxLockDots  = 16
)

var errLockShape = errors.New("not a Cargo.lock cargo writes")

// preScanTOML fails on input over the limits. It tracks just enough TOML
// (strings of all four kinds, comments) to count brackets and dots that are
// syntax, never ones inside strings.
func preScanTOML(data []byte) error {
	if len(data) > maxLockSize {
		return fmt.Errorf("%w: %d bytes, more than %d", errLockShape, len(data), maxLockSize)
	}
	depth, dots := 0, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			dots = 0
		case '\n':
			dots = 0
		case '"', '\'':
			end, ok := skipTOMLString(data, i)
			if !ok {
				return fmt.Errorf("%w: unterminated string", errLockShape)
			}
			i = end
		case '[', '{':
			if depth++; depth > maxLockDepth {
				return fmt.Errorf("%w: nested deeper than %d", errLockShape, maxLockDepth)
			}
		case ']', '}':
			depth--
		case '.':
			if dots++; dots > maxLockDots {
				return fmt.Errorf("%w: more than %d dotted keys on a line", errLockShape, maxLockDots)
			}
		}
	}
	return nil
}

// skipTOMLString returns the index of the last byte of the string starting
// at data[i] (a quote), handling the triple-quoted forms and backslash
// escapes in basic strings.
func skipTOMLString(data []byte, i int) (int, bool) {
	q := data[i]
	multi := i+2 < len(data) && data[i+1] == q && data[i+2] == q
	if multi {
		i += 3
	} else {
		i++
	}
	for ; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\\' && q == '"':
			i++ // the escaped byte is never a terminator
		case c == '\n' && !multi:
			return i, false
		case c == q && !multi:
			return i, true
		case c == q && i+2 < len(data) && data[i+1] == q && data[i+2] == q:
			// A multi-line string may end in up to two more quotes.
			for i+3 < len(data) && data[i+3] == q {
				i++
			}
			return i + 2, true
		}
	}
	return i, false
}
