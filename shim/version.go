package shim

import (
	"runtime/debug"
	"strings"
)

// Version is the source of truth for the release: `make release
// VERSION=x.y.z` rewrites this line (and CHANGELOG.md's heading). Between
// releases it is the next version with -dev. Git tags are a convenience,
// never read: a clone without them builds the same version.
const Version = "0.3.0-dev"

// Commit and Date are stamped by `make build` (-ldflags -X) from HEAD; a
// plain `go build` takes them from the VCS stamp Go embeds.
var (
	Commit = ""
	Date   = ""
)

// LongVersion is "0.2.0 (1a2b3c4d5 2026-11-27)", as `cargo --version`.
func LongVersion() string {
	commit, date := Commit, Date
	if commit == "" {
		commit, date = vcsStamp()
	}
	if commit == "" {
		return Version
	}
	return Version + " (" + strings.TrimSpace(commit+" "+date) + ")"
}

func vcsStamp() (commit, date string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.time":
			date, _, _ = strings.Cut(s.Value, "T")
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(commit) > 9 {
		commit = commit[:9]
	}
	if dirty && commit != "" {
		commit += "-dirty"
	}
	return commit, date
}
