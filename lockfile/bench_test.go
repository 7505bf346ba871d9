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
	benchLockedBy(b, n, func(h *Holder, paths []string) error {
		return h.Lock(paths, time.Minute, nil)
	})
}

// Handed off as a run on a local disk does it: the time until the shim
// could exec cargo (the holder started, its answer not waited for).
func BenchmarkHolderHandOff400(b *testing.B) {
	benchLockedBy(b, 400, func(h *Holder, paths []string) error {
		return h.HandOff(paths, time.Minute, nil)
	})
}

func BenchmarkHolderHandOff24(b *testing.B) {
	benchLockedBy(b, 24, func(h *Holder, paths []string) error {
		return h.HandOff(paths, time.Minute, nil)
	})
}

func BenchmarkHolderLock24(b *testing.B) { benchHolder(b, 24) }

// benchLockedBy times a holder's start (in a goroutine, as a run does)
// with lock taking the n locks; the holder is stopped untimed.
func benchLockedBy(b *testing.B, n int, lock func(h *Holder, paths []string) error) {
	paths := lockPaths(b, n)
	exe := testExe(b)
	for b.Loop() {
		h, err := NewHolder(exe, len(paths))
		if err != nil {
			b.Fatal(err)
		}
		started := make(chan error, 1)
		go func() { started <- h.Start() }()
		err = lock(h, paths)
		if serr := <-started; err == nil {
			err = serr
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		h.Release() // the answer HandOff did not wait for, and the locks
		h.Stop()
		b.StartTimer()
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
