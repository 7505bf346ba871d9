package groupshare

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Read runs on every planned run: one failed open on a registry that is
// not group-shared, a small read and a stat on one that is.
func BenchmarkReadNotShared(b *testing.B) {
	root := b.TempDir()
	for b.Loop() {
		Read(root)
	}
}

func BenchmarkReadShared(b *testing.B) {
	root := b.TempDir()
	os.MkdirAll(filepath.Join(root, shimDirName), 0o777)
	os.WriteFile(MarkPath(root), []byte(strconv.Itoa(os.Getegid())+"\n"), 0o644)
	os.Chmod(root, 0o775|os.ModeSetgid)
	for b.Loop() {
		if !Read(root).Shared {
			b.Fatal("not shared")
		}
	}
}
