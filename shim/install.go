package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cargo-shim/cargo-shim/shim/gitstore"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// installArgs is what a `cargo install` command line asks for.
type installArgs struct {
	path    string   // --path
	crates  []string // NAME or NAME@VERSION
	version string   // --version
	git     bool     // --git: not from a registry
	gitURL  string   // --git's value
	gitRef  gitstore.Ref
	list    bool // --list: reads nothing of the registry
}

// installValueFlags take a separate value; installOptionalValue take one
// only when the next argument is not a flag (clap's optional values).
var (
	installValueFlags = map[string]bool{
		"--version": true, "--vers": true, "--index": true, "--registry": true, "--git": true,
		"--branch": true, "--tag": true, "--rev": true, "--path": true, "--root": true,
		"--message-format": true, "--color": true, "--config": true, "-Z": true,
		"-F": true, "--features": true, "-j": true, "--jobs": true, "--profile": true,
		"--target-dir": true,
	}
	installOptionalValue = map[string]bool{"--bin": true, "--example": true, "--target": true}
)

func parseInstallArgs(args []string) installArgs {
	var a installArgs
	for j := 0; j < len(args); j++ {
		arg := args[j]
		flag, value, hasValue := strings.Cut(arg, "=")
		if !strings.HasPrefix(arg, "--") {
			flag, value, hasValue = arg, "", false
		}
		switch {
		case arg == "--":
			a.crates = append(a.crates, args[j+1:]...)
			return a
		case installValueFlags[flag] && !hasValue && j+1 < len(args):
			j++
			value = args[j]
		case installOptionalValue[flag] && !hasValue && j+1 < len(args) && !strings.HasPrefix(args[j+1], "-"):
			j++
		case !strings.HasPrefix(arg, "-"):
			a.crates = append(a.crates, arg)
		}
		switch flag {
		case "--path":
			a.path = value
		case "--version", "--vers":
			a.version = value
		case "--git":
			a.git, a.gitURL = true, value
		case "--branch":
			a.gitRef.Branch = value
		case "--tag":
			a.gitRef.Tag = value
		case "--rev":
			a.gitRef.Rev = value
		case "--list":
			a.list = true
		}
	}
	return a
}

// installReq is the version requirement cargo applies to one crate of an
// install: a full version is exact (cargo's rule for --version and
// NAME@VERSION); anything else is read as a requirement. nil: any version.
func installReq(spec string) (versionReq, error) {
	if spec == "" {
		return nil, nil
	}
	if _, err := parseSemver(strings.TrimSpace(spec)); err == nil {
		return parseReq("=" + strings.TrimSpace(spec))
	}
	return parseReq(spec)
}

// chooseVersion is the version cargo install picks among a registry's:
// the highest non-yanked one req allows (no pre-release unless req names
// one). An exact requirement also names a yanked version: pinning one cargo
// then refuses costs nothing.
func chooseVersion(entries []store.IndexEntry, req versionReq) (store.IndexEntry, bool) {
	var best store.IndexEntry
	var bestV semver
	found := false
	exact := len(req) == 1 && req[0].op == "=" && req[0].patch >= 0
	for _, e := range entries {
		v, err := parseSemver(e.Vers)
		if err != nil || (e.Yanked && !exact) {
			continue
		}
		if req == nil && v.Pre != "" || req != nil && !req.matches(v) {
			continue
		}
		if !found || v.compare(bestV) > 0 {
			best, bestV, found = e, v, true
		}
	}
	return best, found
}

// installSource is the plan of `cargo install`: the Cargo.lock it builds
// with, or nil when nothing can be planned (said in the debug log).
func (r *Run) installSource(a installArgs) (name string, data []byte) {
	switch {
	case a.list:
		return "", nil
	case a.git:
		r.Log.Debug("cargo install from git: its sources are not in the registry; not planned")
		return "", nil
	case len(a.crates) == 0:
		return "", nil
	}
	var tools []store.Instance
	trusted := true
	for _, spec := range a.crates {
		name, version, _ := strings.Cut(spec, "@")
		if version == "" {
			version = a.version
		}
		chosen, ok := r.chooseTools(name, version)
		tools, trusted = append(tools, chosen...), trusted && ok
	}
	if len(tools) == 0 {
		return "", nil
	}
	name = "the crates of cargo install " + strings.Join(a.crates, " ")
	// The tools' checksums come from index-cache files, the deps' from
	// Cargo.locks packaged in tarballs of those checksums: trusted only
	// when no less-trusted uid could have written those files, else they
	// say which crates to look at, never which bytes are good.
	r.planFrom = store.Hint
	if trusted {
		r.planFrom = store.Trusted
	}
	if data, err := r.Reg.InstallMemo(tools); err == nil {
		return name, data
	}
	crates, complete := r.packagedCrates(tools)
	data = synthesizeLock(crates)
	if complete {
		if err := r.Reg.RecordInstallMemo(tools, data); err != nil {
			r.Log.Debug("cannot record the crates of %s: %v", name, err)
		}
	}
	return name, data
}

// chooseTools is one crate of an install: the version cargo will pick in
// each registry whose cached index lists it; trusted is false when an index
// file that chose one could have been written by a less-trusted uid.
func (r *Run) chooseTools(name, version string) (out []store.Instance, trusted bool) {
	req, err := installReq(version)
	if err != nil {
		r.Log.Debug("cargo install %s: cannot read version %q (%v); not planned", name, version, err)
		return nil, true
	}
	trusted = true
	for _, d := range r.Reg.Regdirs() {
		entries, err := r.Reg.ReadIndexCache(d, name)
		if err != nil {
			if !os.IsNotExist(err) {
				r.Log.Debug("cargo install %s: %v", name, err)
			}
			continue
		}
		e, ok := chooseVersion(entries, req)
		if !ok {
			r.Log.Debug("cargo install %s: no version in %s's cached index matches %q", name, d, version)
			continue
		}
		if e.RustVersion != "" && req == nil {
			r.Log.Debug("cargo install %s: %s needs rust %s; an older cargo picks an older version, which is not planned", name, e.Vers, e.RustVersion)
		}
		out = append(out, store.Instance{Crate: store.Crate{Name: e.Name, Version: e.Vers, Checksum: e.Cksum}, Regdir: d})
		trusted = trusted && e.Trusted
	}
	if len(out) == 0 {
		r.Log.Debug("cargo install %s: cannot tell which version cargo will install (no cached index lists it); not planned", name)
	}
	return out, trusted
}

// packagedCrates are the tools and the crates of the Cargo.lock packaged in
// each one's tarball; complete is false when a tarball could not say.
func (r *Run) packagedCrates(tools []store.Instance) (out []store.Crate, complete bool) {
	complete = true
	for _, tool := range tools {
		out = append(out, tool.Crate)
		lock, err := r.Reg.PackagedLock(tool)
		var deps []store.Crate
		if err == nil {
			deps, err = store.ParseCargoLock(lock, "Cargo.lock of "+tool.Crate.String())
		}
		if err != nil {
			r.Log.Debug("cargo install %s: cannot read the Cargo.lock packaged in it (%v); only %s itself is planned", tool.Name, err, tool.Crate)
			complete = false
			continue
		}
		out = append(out, deps...)
		r.Log.Debug("cargo install %s: %s (%s), %d crates from its packaged Cargo.lock", tool.Name, tool.Crate, tool.Regdir, len(deps))
	}
	sort.Slice(out, func(x, y int) bool { return out[x].Dir() < out[y].Dir() })
	return out, complete
}

// synthesizeLock writes crates as a Cargo.lock, the input a plan is built
// from and keyed by: the same install plans from the same bytes, so a warm
// run finds its plan record.
func synthesizeLock(crates []store.Crate) []byte {
	var b strings.Builder
	b.WriteString("# cargo install, as planned by cargo-shim\nversion = 3\n")
	seen := map[store.Crate]bool{}
	for _, c := range crates {
		if seen[c] {
			continue
		}
		seen[c] = true
		fmt.Fprintf(&b, "\n[[package]]\nname = %q\nversion = %q\nsource = \"registry+cargo-shim-install\"\n", c.Name, c.Version)
		if c.Checksum != "" {
			fmt.Fprintf(&b, "checksum = %q\n", c.Checksum)
		}
	}
	return []byte(b.String())
}

// planSource returns the Cargo.lock a run plans from, nil when the run
// plans nothing. A run that has none checks the whole registry instead, as
// a build without a Cargo.lock does.
func (r *Run) planSource() (name string, data []byte, err error) {
	manifest := r.Cmd.ManifestPath
	if r.Cmd.Sub == "install" {
		a := parseInstallArgs(r.Cmd.SubArgs)
		if a.path == "" {
			name, data = r.installSource(a)
			return name, data, nil
		}
		// --path P builds P's package with its workspace's Cargo.lock.
		manifest = filepath.Join(a.path, "Cargo.toml")
	}
	lockPath, data, err := r.cargoLock(manifest)
	if lockPath == "" {
		return "", nil, r.checkRegistry()
	}
	if err != nil {
		return "", nil, fmt.Errorf("cannot read the planned crates: %w", err)
	}
	return lockPath, data, nil
}

// cargoLock finds and reads the Cargo.lock of the workspace of manifest
// (cwd's when ""), once a run: the git sources and the registry plan read
// the same file (cargo fetch in between is run --locked).
func (r *Run) cargoLock(manifest string) (path string, data []byte, err error) {
	if c := r.lockRead; c != nil && c.manifest == manifest {
		return c.path, c.data, c.err
	}
	c := &cargoLockRead{manifest: manifest, path: store.FindCargoLock(r.Cwd, manifest)}
	if c.path != "" {
		c.data, c.err = os.ReadFile(c.path)
	}
	r.lockRead = c
	return c.path, c.data, c.err
}

type cargoLockRead struct {
	manifest, path string
	data           []byte
	err            error
}
