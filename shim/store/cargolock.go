package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// cargoLockFile is the part of Cargo.lock (versions 1 to 4) the shim reads.
type cargoLockFile struct {
	Version  int           `toml:"version"`
	Packages []lockPackage `toml:"package"`
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

// ParseCargoLock parses Cargo.lock content; name is used in errors. Entries
// whose name or version cargo would not accept are left out (see
// ParseCargoLockEntries for the list).
func ParseCargoLock(data []byte, name string) ([]Crate, error) {
	crates, _, err := ParseCargoLockEntries(data, name)
	return crates, err
}

// ParseCargoLockEntries parses Cargo.lock content into the planned set and
// describes each registry entry it skipped because its name or version is
// not one cargo accepts: such an entry never becomes a path.
func ParseCargoLockEntries(data []byte, name string) (crates []Crate, skipped []string, err error) {
	lf, err := decodeCargoLock(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	seen := map[Crate]bool{}
	for _, p := range lf.Packages {
		if !isRegistrySource(p.Source) {
			continue
		}
		if !ValidName(p.Name) || !ValidVersion(p.Version) {
			skipped = append(skipped, p.Name+" v"+p.Version)
			continue
		}
		sum := p.Checksum
		if sum == "" && lf.Metadata != nil {
			sum = lf.Metadata[fmt.Sprintf("checksum %s %s (%s)", p.Name, p.Version, p.Source)]
		}
		if !validSHA256(sum) {
			skipped = append(skipped, p.Name+" v"+p.Version+" (checksum "+sum+")")
			continue
		}
		c := Crate{Name: p.Name, Version: p.Version, Checksum: sum}
		if !seen[c] {
			seen[c] = true
			crates = append(crates, c)
		}
	}
	sort.Slice(crates, func(a, b int) bool { return crates[a].Dir() < crates[b].Dir() })
	return crates, skipped, nil
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

// GitPackages returns the (name, source) pairs of Cargo.lock's git packages
// ("git+URL...#commit"), read with the same bounded reader as the registry
// ones; package gitstore interprets them.
func GitPackages(data []byte, name string) ([][2]string, error) {
	lf, err := decodeCargoLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out [][2]string
	for _, p := range lf.Packages {
		if strings.HasPrefix(p.Source, "git+") {
			out = append(out, [2]string{p.Name, p.Source})
		}
	}
	return out, nil
}
