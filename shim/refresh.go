package shim

import (
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/targetdir"
)

// refreshTarget makes the target dir this command builds in rebuild the
// crates repaired since it last looked (package targetdir), with the
// planned crates pinned, so none of them is repaired again meanwhile. When
// no repair was ever journaled it costs one lstat. A nested shim skips it:
// the build that runs it holds cargo's lock on that very dir. Nothing here
// stops the build: cargo then runs as it would have.
func (r *Run) refreshTarget(lockPath string) {
	if r.Nested {
		return
	}
	t0 := time.Now()
	stamp, settled := r.Reg.RepairStamp()
	if stamp == "" {
		return
	}
	if !settled {
		r.Log.Debug("the repair journal keeps changing; %s is checked against it without recording its stamp", r.Reg.RepairedDir())
		stamp = ""
	}
	workspace := ""
	if r.Cmd.Sub != "install" {
		workspace = filepath.Dir(lockPath)
	}
	dir, ok := targetdir.Locate(targetdir.Settings{Flag: r.Cmd.TargetDir, TargetDir: r.Cfg.TargetDir,
		BuildTargetDir: r.Cfg.BuildTargetDir, BuildDir: r.Cfg.BuildDir}, r.Cwd, workspace)
	if !ok {
		r.Log.Debug("target dir not known without cargo's config; repaired crates are not rebuilt there")
		return
	}
	res, err := targetdir.Sync(dir, stamp, r.repairs)
	if err != nil {
		r.Log.Warn("cannot make %s rebuild the crates cargo-shim repaired: %v (cargo clean -p NAME does)", dir, err)
	}
	if len(res.Busy) > 0 {
		r.Log.Debug("%s: %s busy (a cargo builds there); next run", dir, strings.Join(res.Busy, ", "))
	}
	if names := crateNames(res.Removed); len(names) > 0 {
		r.Log.Status("Rebuilding", strings.Join(names, ", ")+" (repaired since "+dir+" compiled them)")
		r.rec.Act("rebuilt")
	}
	r.Log.Debug("target dir %s checked against the repair journal (%s)", dir, time.Since(t0))
}

func (r *Run) repairs() ([]targetdir.Repair, error) {
	list, err := r.Reg.Repairs()
	out := make([]targetdir.Repair, len(list))
	for k, x := range list {
		out[k] = targetdir.Repair{Name: x.Name, At: x.At}
	}
	return out, err
}

// crateNames are the crates whose fingerprint dirs were removed, sorted.
func crateNames(removed []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range removed {
		base := filepath.Base(p)
		name := base[:strings.LastIndexByte(base, '-')]
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
