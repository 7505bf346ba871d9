package lockfile

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func lockPaths(b *testing.B, n int) []string {
	dir := b.TempDir()
	var paths []string
	for i := 0; i < n; i++ {
		paths = append(paths, filepath.Join(dir, "r", fmt.Sprintf("crate-%05d-1.0.0.lock", i)))
	}
	return paths
}

// The drop-in's pin: 400 shared locks, taken and released.
func BenchmarkAcquireSetShared400(b *testing.B) {
	paths := lockPaths(b, 400)
	for b.Loop() {
		s, err := AcquireSet(context.Background(), paths, Shared, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

// The same below a declared registry: every lock resolved beneath its
// descriptor (openat2), as the drop-in takes them.
func BenchmarkAcquireSetShared400Beneath(b *testing.B) {
	paths := lockPaths(b, 400)
	if err := Beneath(filepath.Dir(filepath.Dir(paths[0]))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := AcquireSet(context.Background(), paths, Shared, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

// The same through the holder process, as the drop-in does it.
func BenchmarkHolderLock400(b *testing.B) { benchHolder(b, 400) }

// A holder's start-up alone, with one lock.
func BenchmarkHolderStartLock1(b *testing.B) { benchHolder(b, 1) }

func benchHolder(b *testing.B, n int) {
	paths := lockPaths(b, n)
	exe := testExe(b)
	for b.Loop() {
		h, err := StartHolder(exe, len(paths))
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Lock(paths, time.Minute, nil); err != nil {
			b.Fatal(err)
		}
		h.Stop()
	}
}

func BenchmarkTryExclusive(b *testing.B) {
	p := lockPaths(b, 1)[0]
	for b.Loop() {
		l, err := Try(p, Exclusive)
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
}
