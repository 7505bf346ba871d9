package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// cargoLockFile is the part of Cargo.lock (versions 1 to 4) the shim reads.
type cargoLockFile struct {
	Version  int `toml:"version"`
	Packages []struct {
		Name     string `toml:"name"`
		Version  string `toml:"version"`
		Source   string `toml:"source"`
		Checksum string `toml:"checksum"`
	} `toml:"package"`
	// Version 1 keeps checksums here:
	// "checksum fnv 1.0.7 (registry+https://...)" = "<sha256>"
	Metadata map[string]string `toml:"metadata"`
}

// ReadCargoLock returns the registry packages of a Cargo.lock, sorted and
// de-duplicated: the planned set. Git and path packages are not in the
// registry and are left out.
func ReadCargoLock(p string) ([]Crate, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return ParseCargoLock(data, p)
}

// ParseCargoLock parses Cargo.lock content; name is used in errors.
func ParseCargoLock(data []byte, name string) ([]Crate, error) {
	var lf cargoLockFile
	if err := toml.Unmarshal(data, &lf); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	seen := map[Crate]bool{}
	var out []Crate
	for _, p := range lf.Packages {
		if !isRegistrySource(p.Source) {
			continue
		}
		if p.Name == "" || p.Version == "" || strings.ContainsAny(p.Name+p.Version, "/\\\n") || strings.Contains(p.Name+p.Version, "..") {
			return nil, fmt.Errorf("%s: invalid package name or version %q %q", name, p.Name, p.Version)
		}
		sum := p.Checksum
		if sum == "" && lf.Metadata != nil {
			sum = lf.Metadata[fmt.Sprintf("checksum %s %s (%s)", p.Name, p.Version, p.Source)]
		}
		c := Crate{Name: p.Name, Version: p.Version, Checksum: sum}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Dir() < out[b].Dir() })
	return out, nil
}

func isRegistrySource(src string) bool {
	return strings.HasPrefix(src, "registry+") || strings.HasPrefix(src, "sparse+")
}

// FindCargoLock returns the Cargo.lock a command run in cwd with the given
// --manifest-path (may be empty) will use: the nearest one at or above the
// manifest's directory. "" when there is none.
func FindCargoLock(cwd, manifestPath string) string {
	dir := cwd
	if manifestPath != "" {
		if !filepath.IsAbs(manifestPath) {
			manifestPath = filepath.Join(cwd, manifestPath)
		}
		dir = filepath.Dir(manifestPath)
	}
	for {
		p := filepath.Join(dir, "Cargo.lock")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
