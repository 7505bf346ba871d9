// Package admin is the work behind the cargo-shim admin command: verify,
// repair, gc and status of a shared registry, under the same per-crate locks
// as the drop-in. cmd/cargo-shim only wires flags to it.
package admin

import (
	"runtime"
	"sort"

	"github.com/cargo-shim/cargo-shim/shim"
)

// Targets lists the instances to look at: those the Cargo.lock files name
// (with their checksums), or every extraction and tarball in the registry.
func Targets(reg shim.Registry, lockfiles []string) ([]shim.Instance, error) {
	if len(lockfiles) == 0 {
		// No Cargo.lock: a full check compares with the checksum recorded
		// when the crate was last verified from a trusted tarball.
		return reg.AllInstances(), nil
	}
	regdirs := reg.Regdirs()
	seen := map[shim.Instance]bool{}
	var out []shim.Instance
	for _, lf := range lockfiles {
		crates, err := shim.ReadCargoLock(lf)
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

// parallel runs fn for each index on two workers per core (the admin
// command's checks wait on the disk more than a warm run's); done is called
// after each, from any worker, for progress.
func parallel(n int, fn func(i int), done func()) {
	shim.ParallelEach(runtime.GOMAXPROCS(0)*2, n, func(i int) {
		fn(i)
		if done != nil {
			done()
		}
	})
}
