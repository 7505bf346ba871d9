package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Cargo.lock comes from the project being built, which may be hostile,
// and is read on every run. A general TOML parser's time and memory grow
// faster than its input: BurntSushi/toml took 44 s and 1.35 GB on 8,000
// nested inline tables in 32 KB, and seconds on a few MiB of plain array
// tables or nested arrays, while cargo rejects such files at once. So the
// shim reads only what cargo writes (versions 1 to 4: a version line,
// [[package]] tables of string keys and arrays of strings, [metadata],
// [[patch.unused]], [root]), line by line in linear time, and anything else
// is "not a Cargo.lock cargo writes": one warning, and cargo runs as usual.

var errLockShape = errors.New("not a Cargo.lock cargo writes")

// lockPackage is one [[package]] table's keys the shim uses.
type lockPackage struct {
	Name     string `toml:"name"`
	Version  string `toml:"version"`
	Source   string `toml:"source"`
	Checksum string `toml:"checksum"`
}

// lockDecoder is the state between lines.
type lockDecoder struct {
	lf      cargoLockFile
	section string          // "" (top), "package", "metadata" or "other"
	keys    map[string]bool // keys of the current table: a repeat is a TOML error
	tables  map[string]bool // single-bracket tables seen: a repeat is a TOML error
	inArray bool
}

// decodeCargoLock reads the subset of TOML cargo writes into Cargo.lock.
func decodeCargoLock(data []byte) (*cargoLockFile, error) {
	if len(data) > maxLockSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errLockShape, len(data), maxLockSize)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", errLockShape)
	}
	d := &lockDecoder{keys: map[string]bool{}, tables: map[string]bool{}}
	s := string(data)
	for n := 1; s != ""; n++ {
		line, rest, newline := strings.Cut(s, "\n")
		s = rest
		if newline {
			line = strings.TrimSuffix(line, "\r") // CRLF; a lone CR is not TOML
		}
		line = strings.Trim(line, " \t")
		if strings.IndexFunc(line, isTOMLControl) >= 0 {
			return nil, fmt.Errorf("%w: control character (line %d)", errLockShape, n)
		}
		if err := d.line(line); err != nil {
			return nil, fmt.Errorf("%w (line %d)", errLockShape, n)
		}
	}
	if d.inArray {
		return nil, fmt.Errorf("%w: unterminated array", errLockShape)
	}
	return &d.lf, nil
}

func (d *lockDecoder) line(s string) error {
	if s == "" || s[0] == '#' {
		return nil
	}
	if d.inArray {
		if s == "]" {
			d.inArray = false
			return nil
		}
		if _, ok := basicString(strings.TrimSuffix(s, ",")); !ok {
			return errLockShape
		}
		return nil
	}
	if s[0] == '[' {
		return d.header(s)
	}
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return errLockShape
	}
	key, ok := lockKey(strings.Trim(k, " \t"))
	if !ok || d.keys[key] {
		return errLockShape
	}
	d.keys[key] = true
	return d.value(key, strings.Trim(v, " \t"))
}

// header starts a table: only the ones cargo writes.
func (d *lockDecoder) header(s string) error {
	d.keys = map[string]bool{}
	switch s {
	case "[[package]]":
		d.section = "package"
		d.lf.Packages = append(d.lf.Packages, lockPackage{})
		return nil
	case "[[patch.unused]]":
		d.section = "other"
		return nil
	case "[metadata]", "[root]":
		if d.tables[s] {
			return errLockShape
		}
		d.tables[s] = true
		d.section = strings.Trim(s, "[]")
		if d.section == "metadata" {
			d.lf.Metadata = map[string]string{}
		} else {
			d.section = "other"
		}
		return nil
	}
	return errLockShape
}

// value reads one value: a string, an array of strings (possibly over
// several lines) or, for the top-level version, a small integer.
func (d *lockDecoder) value(key, v string) error {
	if d.section == "" {
		// cargo writes "version = 3" (one digit) at the top, nothing else.
		if key != "version" || len(v) != 1 || v[0] < '0' || v[0] > '9' {
			return errLockShape
		}
		d.lf.Version = int(v[0] - '0')
		return nil
	}
	if strings.HasPrefix(v, "[") {
		if d.section == "metadata" || d.section == "package" && usedKey(key) {
			return errLockShape // a string is expected there
		}
		if v == "[" {
			d.inArray = true
			return nil
		}
		return stringArray(v)
	}
	str, ok := basicString(v)
	if !ok {
		return errLockShape
	}
	switch d.section {
	case "metadata":
		d.lf.Metadata[key] = str
	case "package":
		p := &d.lf.Packages[len(d.lf.Packages)-1]
		switch key {
		case "name":
			p.Name = str
		case "version":
			p.Version = str
		case "source":
			p.Source = str
		case "checksum":
			p.Checksum = str
		}
	}
	return nil
}

// basicString decodes s, which must be exactly one TOML basic string.
func basicString(s string) (string, bool) {
	v, n, ok := scanString(s)
	return v, ok && n == len(s)
}

// scanString decodes the basic string at the start of s, returning its
// value and length. Escapes are decoded (a name with one is then refused
// by the name check, with a warning naming it); raw control characters are
// not TOML.
func scanString(s string) (string, int, bool) {
	if s == "" || s[0] != '"' {
		return "", 0, false
	}
	if end := strings.IndexAny(s[1:], "\"\\"); end >= 0 && s[1+end] == '"' {
		// No escape: the value is a substring (the common case).
		body := s[1 : 1+end]
		if strings.IndexFunc(body, isTOMLControl) >= 0 {
			return "", 0, false
		}
		return body, end + 2, true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, true
		case c == '\\':
			r, n, ok := unescape(s[i+1:])
			if !ok {
				return "", 0, false
			}
			b.WriteRune(r)
			i += n
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", 0, false
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// unescape decodes one escape after its backslash: the rune and how many
// bytes it took.
func unescape(s string) (rune, int, bool) {
	if s == "" {
		return 0, 0, false
	}
	if r, ok := map[byte]rune{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\'}[s[0]]; ok {
		return r, 1, true
	}
	n := map[byte]int{'u': 4, 'U': 8}[s[0]]
	if n == 0 || len(s) < 1+n {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(s[1:1+n], 16, 32)
	if err != nil || v > unicode.MaxRune || v >= 0xd800 && v < 0xe000 {
		return 0, 0, false
	}
	return rune(v), 1 + n, true
}

// stringArray checks a one-line array of strings: [], ["a"], ["a", "b",].
func stringArray(v string) error {
	if !strings.HasSuffix(v, "]") {
		return errLockShape
	}
	body := strings.Trim(v[1:len(v)-1], " \t")
	for body != "" {
		_, n, ok := scanString(body)
		if !ok {
			return errLockShape
		}
		body = strings.TrimLeft(body[n:], " \t")
		if body == "" {
			break
		}
		if body[0] != ',' {
			return errLockShape
		}
		body = strings.TrimLeft(body[1:], " \t")
	}
	return nil
}

// lockKey reads a bare key or a quoted one (v1's metadata keys).
func lockKey(k string) (string, bool) {
	if s, ok := basicString(k); ok {
		return s, true
	}
	if k == "" {
		return "", false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isAlnum(c) && c != '-' && c != '_' {
			return "", false
		}
	}
	return k, true
}

// isTOMLControl: TOML allows no raw control character but tab, anywhere.
func isTOMLControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

func usedKey(k string) bool {
	return k == "name" || k == "version" || k == "source" || k == "checksum"
}
