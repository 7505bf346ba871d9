package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable escapes what a terminal would act on instead of show: C0 and C1
// control characters (NUL, ESC, newlines), Unicode bidi overrides and bytes
// that are not UTF-8. Crate names, file names and record contents come from
// other uids and tarballs: printed raw, one could forge lines or rewrite a
// terminal. Every line the shim and the admin command print goes through it.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case needsEscape(r) && r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		case needsEscape(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// needsEscape: a rune Printable escapes, and a tarball entry or a record
// may not hold.
func needsEscape(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r == utf8.RuneError ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}
