package store

import "strings"

// Crate names and versions become path components (src/<regdir>/<name>-<version>,
// the lock and state files): anything read from a Cargo.lock, a record or a
// directory listing is checked here before it is used to build a path.

// maxNameLen is crates.io's limit on a package name.
const maxNameLen = 64

// maxVersionLen keeps <name>-<version>.crate.lock under a file name's 255
// bytes; no published version comes near it.
const maxVersionLen = 128

// ValidName reports whether s is a registry package name: ASCII letters,
// digits, '-' and '_', at most 64 bytes.
func ValidName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ValidVersion reports whether s is a semver version as cargo parses one:
// MAJOR.MINOR.PATCH without leading zeros, then an optional -pre-release
// and +build, each dot-separated non-empty [0-9A-Za-z-] identifiers.
func ValidVersion(s string) bool {
	if s == "" || len(s) > maxVersionLen {
		return false
	}
	core, build, hasBuild := strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if !isNumericID(p) {
			return false
		}
	}
	if hasPre && !validIdents(pre, true) {
		return false
	}
	return !hasBuild || validIdents(build, false)
}

// validIdents checks dot-separated identifiers; in a pre-release a numeric
// one must not have a leading zero.
func validIdents(s string, pre bool) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		digits := true
		for i := 0; i < len(id); i++ {
			if !isAlnum(id[i]) && id[i] != '-' {
				return false
			}
			digits = digits && id[i] >= '0' && id[i] <= '9'
		}
		if pre && digits && !isNumericID(id) {
			return false
		}
	}
	return true
}

func isNumericID(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validCrate: both parts usable in a path.
func validCrate(c Crate) bool { return ValidName(c.Name) && ValidVersion(c.Version) }

// ValidRegdir reports whether s can be a registry directory name (cargo's
// "<host>-<hash>", or "-<hash>" for a local registry): one path component,
// printable, not "." or "..".
func ValidRegdir(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '/' || c >= 0x80 {
			return false
		}
	}
	return true
}
