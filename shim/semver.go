package shim

import (
	"errors"
	"strconv"
	"strings"

	"github.com/cargo-shim/cargo-shim/shim/store"
)

// semver is a version as cargo's semver crate reads it; build metadata
// takes no part in ordering or matching, so it is checked and dropped.
type semver struct {
	Major, Minor, Patch uint64
	Pre                 string
}

var errSemver = errors.New("not a semver version")

func parseSemver(s string) (semver, error) {
	var v semver
	// A version from a shared index names a directory: only what cargo
	// accepts as a version, which never names another path.
	if !store.ValidVersion(s) {
		return v, errSemver
	}
	core, _, _ := strings.Cut(s, "+")
	core, v.Pre, _ = strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	var nums [3]uint64
	for n, p := range parts {
		x, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return v, errSemver
		}
		nums[n] = x
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, nil
}

// compare orders versions by semver precedence.
func (a semver) compare(b semver) int {
	for _, d := range [3][2]uint64{{a.Major, b.Major}, {a.Minor, b.Minor}, {a.Patch, b.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.Pre == b.Pre:
		return 0
	case a.Pre == "":
		return 1
	case b.Pre == "":
		return -1
	}
	return comparePre(a.Pre, b.Pre)
}

func comparePre(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for n := 0; n < len(as) && n < len(bs); n++ {
		x, xerr := strconv.ParseUint(as[n], 10, 64)
		y, yerr := strconv.ParseUint(bs[n], 10, 64)
		switch {
		case xerr == nil && yerr == nil && x != y:
			if x < y {
				return -1
			}
			return 1
		case xerr == nil && yerr != nil:
			return -1
		case xerr != nil && yerr == nil:
			return 1
		case as[n] != bs[n]:
			return strings.Compare(as[n], bs[n])
		}
	}
	return len(as) - len(bs)
}

// comparator is one term of a version requirement, with the parts a
// partial version leaves out marked -1.
type comparator struct {
	op                  string
	major, minor, patch int64
	pre                 string
}

// versionReq is a cargo version requirement: comparators joined by commas.
type versionReq []comparator

// parseReq reads a requirement such as "^1.2", ">=1, <2", "=0.3.1" or "*".
// A bare partial version ("1.2") is a caret requirement, as in Cargo.toml.
func parseReq(s string) (versionReq, error) {
	var req versionReq
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		c := comparator{op: "^", major: -1, minor: -1, patch: -1}
		for _, op := range []string{">=", "<=", "=", ">", "<", "~", "^"} {
			if rest, ok := strings.CutPrefix(term, op); ok {
				c.op, term = op, strings.TrimSpace(rest)
				break
			}
		}
		core, _, _ := strings.Cut(term, "+")
		core, c.pre, _ = strings.Cut(core, "-")
		parts := strings.Split(core, ".")
		if len(parts) > 3 || core == "" {
			return nil, errSemver
		}
		for n, p := range parts {
			if p == "*" || p == "x" || p == "X" {
				break
			}
			x, err := strconv.ParseInt(p, 10, 64)
			if err != nil || x < 0 {
				return nil, errSemver
			}
			*[]*int64{&c.major, &c.minor, &c.patch}[n] = x
		}
		req = append(req, c)
	}
	return req, nil
}

// matches is cargo's rule: every comparator holds, and a pre-release only
// matches when some comparator names a pre-release of the same x.y.z.
func (req versionReq) matches(v semver) bool {
	for _, c := range req {
		if !c.matches(v) {
			return false
		}
	}
	if v.Pre == "" {
		return true
	}
	for _, c := range req {
		if c.pre != "" && c.major == int64(v.Major) && c.minor == int64(v.Minor) && c.patch == int64(v.Patch) {
			return true
		}
	}
	return false
}

func (c comparator) matches(v semver) bool {
	lo := semver{Major: uint64(max(c.major, 0)), Minor: uint64(max(c.minor, 0)), Patch: uint64(max(c.patch, 0)), Pre: c.pre}
	cmp := v.compare(lo)
	if c.major < 0 {
		return true // "*"
	}
	// bump is the first version past what the given parts pin.
	bump := func(part int) semver {
		switch part {
		case 0:
			return semver{Major: lo.Major + 1, Pre: "0"}
		case 1:
			return semver{Major: lo.Major, Minor: lo.Minor + 1, Pre: "0"}
		}
		return semver{Major: lo.Major, Minor: lo.Minor, Patch: lo.Patch + 1, Pre: "0"}
	}
	pinned := 2
	if c.minor < 0 {
		pinned = 0
	} else if c.patch < 0 {
		pinned = 1
	}
	below := func(hi semver) bool { return v.compare(hi) < 0 }
	switch c.op {
	case "=":
		if pinned == 2 {
			return cmp == 0
		}
		return cmp >= 0 && below(bump(pinned))
	case ">":
		if pinned == 2 {
			return cmp > 0
		}
		return v.compare(bump(pinned)) >= 0
	case ">=":
		return cmp >= 0
	case "<":
		return cmp < 0
	case "<=":
		return below(bump(pinned))
	case "~":
		return cmp >= 0 && below(bump(min(pinned, 1)))
	}
	// caret: the leftmost non-zero part given may not change.
	switch {
	case lo.Major > 0 || pinned == 0:
		return cmp >= 0 && below(bump(0))
	case lo.Minor > 0 || pinned == 1:
		return cmp >= 0 && below(bump(1))
	}
	return cmp >= 0 && below(bump(2))
}
