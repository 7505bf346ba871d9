// Package gitstore owns every filesystem access to the shared
// $CARGO_HOME/git directory: cargo's git databases (git/db/<ident>) and
// checkouts (git/checkouts/<ident>/<short-rev>/), the shim's locks, stamp
// records and trash beside them (git/.cargo-shim/), and the checks and
// repairs of checkouts. It knows nothing of the run or of output.
package gitstore

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Source is one git package source of a Cargo.lock, locked to a commit.
type Source struct {
	Name      string // the first package that names it, for messages
	URL       string // the repository URL as Cargo.lock spells it, no query or fragment
	Canonical string // cargo's CanonicalUrl of URL
	Ident     string // <last path segment>-<short hash of Canonical>
	Commit    string // full hex object id Cargo.lock locks
}

func (s Source) String() string {
	return fmt.Sprintf("%s (%s#%s)", s.Name, s.URL, short(s.Commit))
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// ParseSource reads a Cargo.lock source "git+URL[?branch=|tag=|rev=]#COMMIT".
// ok is false for anything else, or a commit that is not a full hex id (the
// shim never derives a path from it then).
func ParseSource(name, src string) (Source, bool) {
	rest, ok := strings.CutPrefix(src, "git+")
	if !ok {
		return Source{}, false
	}
	rest, commit, ok := strings.Cut(rest, "#")
	if !ok || !validCommit(commit) {
		return Source{}, false
	}
	raw, _, _ := strings.Cut(rest, "?")
	canon, last, ok := canonicalURL(raw)
	if !ok {
		return Source{}, false
	}
	if last == "" {
		last = "_empty"
	}
	return Source{Name: name, URL: raw, Canonical: canon, Ident: last + "-" + shortHash(canon), Commit: strings.ToLower(commit)}, true
}

func validCommit(c string) bool {
	if len(c) != 40 && len(c) != 64 {
		return false
	}
	for _, r := range c {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// canonicalURL is cargo's CanonicalUrl::new (util/canonical_url.rs): no
// trailing slash; github.com as https with a lower-case path; no ".git" at
// the end. last is the canonical path's last segment, which names the
// directories (cargo's ident). URLs the url crate would spell differently
// from Go (percent-encoding, default ports) are not normalised: such a
// source gets paths cargo does not use, which the shim then finds missing
// and leaves to cargo.
func canonicalURL(raw string) (canon, last string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" && u.Scheme != "file" {
		return "", "", false
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	path := u.EscapedPath()
	path = strings.TrimSuffix(path, "/")
	if u.Host == "github.com" {
		u.Scheme = "https"
		path = strings.ToLower(path)
	}
	path = strings.TrimSuffix(path, ".git")
	if path == "" {
		path = "/"
	}
	canon = u.Scheme + "://" + hostPart(u) + path
	last = path[strings.LastIndexByte(path, '/')+1:]
	if strings.ContainsAny(last, "\x00") || last == "." || last == ".." {
		return "", "", false
	}
	return canon, last, true
}

func hostPart(u *url.URL) string {
	h := u.Host
	if u.User != nil {
		h = u.User.String() + "@" + h
	}
	return h
}

// Sources turns Cargo.lock's git package sources (name, source pairs) into
// the planned set, sorted, one per (ident, commit). bad lists sources the
// shim does not plan.
func Sources(pkgs [][2]string) (out []Source, bad []string) {
	seen := map[string]bool{}
	for _, p := range pkgs {
		s, ok := ParseSource(p[0], p[1])
		if !ok {
			bad = append(bad, p[0]+" ("+p[1]+")")
			continue
		}
		if key := s.Ident + "/" + s.Commit; !seen[key] {
			seen[key] = true
			out = append(out, s)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Ident != out[b].Ident {
			return out[a].Ident < out[b].Ident
		}
		return out[a].Commit < out[b].Commit
	})
	return out, bad
}

// SourceOf is the source of a repository URL whose commit is not known yet
// (`cargo install --git URL`): Commit is empty until the caller resolves
// it. ok is false for a URL the shim cannot name directories for.
func SourceOf(name, rawURL string) (Source, bool) {
	s, ok := ParseSource(name, "git+"+rawURL+"#"+strings.Repeat("0", 40))
	s.Commit = ""
	return s, ok
}
