package lockfile

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Parallel runs fn for 0..n-1 on at most workers goroutines (0: one per
// core). It is the one worker pool of cargo-shim: AcquireSet's first pass
// and the registry checks, both bound by syscalls, where one worker per core
// is what pays on a warm run.
func Parallel(workers, n int, fn func(int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	workers = min(workers, n)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				fn(k)
			}
		}()
	}
	wg.Wait()
}
