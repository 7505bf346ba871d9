// Package admin is the work behind the cargo-shim admin command: verify,
// repair, gc and status of a shared registry, under the same per-crate locks
// as the drop-in. cmd/cargo-shim only wires flags to it.
package admin

import (
	"sort"

	"github.com/cargo-shim/cargo-shim/shim/store"
)

// Targets lists the instances to look at: those the Cargo.lock files name
// (with their checksums), or every extraction and tarball in the registry.
func Targets(reg store.Registry, lockfiles []string) ([]store.Instance, error) {
	if len(lockfiles) == 0 {
		// No Cargo.lock: a full check compares with the checksum recorded
		// when the crate was last verified from a trusted tarball.
		return reg.AllInstances(), nil
	}
	regdirs := reg.Regdirs()
	seen := map[store.Instance]bool{}
	var out []store.Instance
	for _, lf := range lockfiles {
		crates, err := store.ReadCargoLock(lf)
		if err != nil {
			return nil, err
		}
		for _, c := range crates {
			for _, i := range reg.Locate(c, regdirs) {
				if !seen[i] {
					seen[i] = true
					out = append(out, i)
				}
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Regdir != out[b].Regdir {
			return out[a].Regdir < out[b].Regdir
		}
		return out[a].Dir() < out[b].Dir()
	})
	return out, nil
}
