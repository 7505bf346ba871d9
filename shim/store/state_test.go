package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Inode numbers above 1<<63 are everyday on GlusterFS (derived from 128-bit
// file ids); a record holding one must read back, or the fast check never
// trusts a record there and every run re-verifies every crate.
func TestStateKeepsFull64BitInodes(t *testing.T) {
	big := uint64(1)<<63 + 11939812468077406
	want := &State{
		SHA256:   "ab",
		Recorded: 1795792443909056931,
		Tarball:  &stamp{Ino: ^uint64(0), Size: 10, Mtime: 1, Ctime: 2},
		Marker:   stamp{Ino: big + 1, Size: 7, Mtime: 3, Ctime: 4},
		Dirs:     []dirStamp{{Rel: ".", stamp: stamp{Ino: big, Mtime: 5, Ctime: 6}}, {Rel: "src", stamp: stamp{Ino: 42, Mtime: 7, Ctime: 8}}},
		Files:    []FileEntry{{Path: "src/lib.rs", Size: 12}},
		hasFiles: true,
	}
	p := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(p, want.encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readState(p, true)
	if err != nil {
		t.Fatalf("a record with 64-bit inode numbers does not read back: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
}
