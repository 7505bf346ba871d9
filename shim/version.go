package shim

import (
	"runtime/debug"
	"strings"
)

// Version, Commit and Date are set at build time by `make build` with
// -ldflags "-X .../shim.Version=0.2.0 ..." from `git describe --tags`. A
// plain `go build` leaves Version at 0.0.0-dev and takes the commit and
// its date from the VCS stamp Go embeds.
var (
	Version = "0.0.0-dev"
	Commit  = ""
	Date    = ""
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
