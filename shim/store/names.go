package store

import (
	"strconv"
	"strings"
	"time"
)

// The names cargo-shim gives what it creates or sets aside beside cargo's
// files. Each starts with something cargo never reads as a crate, and each
// ends in the pid (and time) that make it unique, so the code that cleans up
// can tell its own leftovers from anything else:
//
//	src/<regdir>/.cargo-shim-tmp-<name>-<version>-<pid>[-old]   a repair's temp dir
//	src/<regdir>/.cargo-shim-trash-<name>-<version>.<ns>.<pid>  set aside in place
//	.cargo-shim/trash/<regdir>.<name>-<version>.<ns>.<pid>       in the trash
const (
	tmpPrefix   = ".cargo-shim-tmp-"
	asidePrefix = ".cargo-shim-trash-"
)

type leftoverKind int

const (
	repairTemp leftoverKind = iota + 1 // a repair's temp dir
	setAside                           // trash that could not leave src/<regdir>
	trashed                            // in .cargo-shim/trash
)

// leftover is one such name, decoded.
type leftover struct {
	kind leftoverKind
	// stem is <name>-<version>; in the trash, <regdir>.<name>-<version>
	// (regdirs and versions both hold dots: it is not split further).
	stem string
	pid  int
	at   time.Time // setAside and trashed: when
	old  bool      // repairTemp: the extraction it replaced
}

func (l leftover) String() string {
	switch l.kind {
	case repairTemp:
		s := tmpPrefix + l.stem + "-" + strconv.Itoa(l.pid)
		if l.old {
			s += "-old"
		}
		return s
	case setAside:
		return asidePrefix + l.stem + "." + l.timePid()
	}
	return l.stem + "." + l.timePid()
}

func (l leftover) timePid() string {
	return strconv.FormatInt(l.at.UnixNano(), 10) + "." + strconv.Itoa(l.pid)
}

// parseLeftover decodes a name String made; ok is false for any other name.
func parseLeftover(name string) (l leftover, ok bool) {
	if rest, found := strings.CutPrefix(name, tmpPrefix); found {
		l = leftover{kind: repairTemp}
		rest, l.old = strings.CutSuffix(rest, "-old")
		k := strings.LastIndexByte(rest, '-')
		if k <= 0 {
			return leftover{}, false
		}
		l.stem = rest[:k]
		l.pid, ok = atoiDigits(rest[k+1:])
		return l, ok
	}
	l = leftover{kind: trashed}
	if rest, found := strings.CutPrefix(name, asidePrefix); found {
		l.kind, name = setAside, rest
	}
	parts := strings.Split(name, ".")
	need := 3 // stem, ns, pid
	if l.kind == trashed {
		need = 4 // <regdir>.<dir>: at least one dot in the stem
	}
	if len(parts) < need {
		return leftover{}, false
	}
	ns, ok1 := atoiDigits(parts[len(parts)-2])
	pid, ok2 := atoiDigits(parts[len(parts)-1])
	if !ok1 || !ok2 {
		return leftover{}, false
	}
	l.stem = strings.Join(parts[:len(parts)-2], ".")
	l.at, l.pid = time.Unix(0, int64(ns)), pid
	return l, true
}

// atoiDigits reads a non-empty run of decimal digits only (no sign).
func atoiDigits(s string) (int, bool) {
	if !isDigits(s) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
