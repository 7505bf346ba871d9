package admin

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// UninstallEntry is one of a home's cargo lock files.
type UninstallEntry struct {
	File string `json:"file"`
	// Was is what the file was before: "plain", "missing", "link to <target>".
	Was string `json:"was"`
	// Action: "restored" (now a plain file), "would restore" (dry run),
	// "none" (nothing of the shim's there), "busy" (a cargo of this home holds
	// it: run again), "left" (a link someone else made, or an error: Detail).
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// UninstallReport is `cargo-shim uninstall --json`.
type UninstallReport struct {
	Homes  []string         `json:"homes"`
	DryRun bool             `json:"dry_run"`
	Files  []UninstallEntry `json:"files"`
	// ShimDirs are the shim's directories beside each home's shared
	// registry and git/ (locks, records, trash): cargo reads none of them;
	// uninstall leaves them (other runners may still use the shim) and
	// names them for removal by hand.
	ShimDirs []string `json:"shim_dirs"`
}

// Left counts the files that are not plain cargo files afterwards.
func (r *UninstallReport) Left() int {
	n := 0
	for _, e := range r.Files {
		if e.Action == "busy" || e.Action == "left" {
			n++
		}
	}
	return n
}

// Uninstall gives each home back the cargo lock files cargo itself makes:
// every link the shim made is replaced by a plain file, under the lock of
// the file it named, so that no cargo of that home is inside its lock
// meanwhile. What the shim did not make is left alone and reported.
func Uninstall(homes []string, dry bool) *UninstallReport {
	rep := &UninstallReport{Homes: homes, DryRun: dry, Files: []UninstallEntry{}, ShimDirs: []string{}}
	for _, home := range homes {
		for _, f := range store.CargoLockFiles(home) {
			rep.Files = append(rep.Files, uninstallOne(f, dry))
		}
		for _, d := range []string{filepath.Join(home, "registry", ".cargo-shim"), filepath.Join(home, "git", ".cargo-shim")} {
			if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
				rep.ShimDirs = append(rep.ShimDirs, d)
			}
		}
	}
	return rep
}

func uninstallOne(f string, dry bool) UninstallEntry {
	e := UninstallEntry{File: f, Action: "none"}
	target, err := os.Readlink(f)
	if err != nil {
		e.Was = "plain"
		if _, err := os.Lstat(f); err != nil {
			e.Was = "missing"
		}
		return e
	}
	e.Was = "link to " + target
	switch err := shimRestore(f, dry); {
	case err == nil && dry:
		e.Action = "would restore"
	case err == nil:
		e.Action = "restored"
	case lockfile.IsBusy(err):
		e.Action, e.Detail = "busy", "a cargo of this home holds it; run again when it is done"
	default:
		e.Action, e.Detail = "left", err.Error()
	}
	return e
}

func shimRestore(f string, dry bool) error {
	if !dry {
		return store.RestorePlain(f)
	}
	if target, _ := os.Readlink(f); !store.IsShimLockLink(target) {
		return fmt.Errorf("%s -> %s: %w", f, target, store.ErrForeignLink)
	}
	return nil
}

// PrintUninstall says what happened to each file and what is left to do.
func PrintUninstall(log *shim.Logger, w io.Writer, rep *UninstallReport) {
	restored := 0
	for _, e := range rep.Files {
		switch e.Action {
		case "restored", "would restore":
			restored++
			verb := "Restored"
			if rep.DryRun {
				verb = "Would restore"
			}
			log.Status(verb, fmt.Sprintf("%s (was a %s)", e.File, e.Was))
		case "busy", "left":
			log.Status("Left", fmt.Sprintf("%s (%s): %s", e.File, e.Was, e.Detail))
		}
	}
	for _, d := range rep.ShimDirs {
		log.Status("Left", d+" (the shim's locks and records; cargo reads none: remove it once no runner uses cargo-shim)")
	}
	if log.Mode == shim.LogQuiet {
		return
	}
	fmt.Fprintf(w, "%d of cargo's lock files %s to plain files in %s, %d left\n",
		restored, map[bool]string{true: "would be restored", false: "restored"}[rep.DryRun], plural(len(rep.Homes), "home"), rep.Left())
}
