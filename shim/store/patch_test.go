package store

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cargo-shim/cargo-shim/shim/store/storetest"
	"golang.org/x/sys/unix"
)

// patchedCrate is an extracted crate with nested directories, and the
// temp extraction of its tarball beside it that patchInPlace takes.
func patchedCrate(t *testing.T) (r Registry, i Instance, tmp string) {
	t.Helper()
	r = Registry{Root: t.TempDir()}
	c := Crate{Name: "nest", Version: "0.1.0"}
	tb := storetest.Files(c.Dir(), map[string]string{"Cargo.toml": "[package]\n", "README": "readme\n",
		"src/lib.rs": "mod a;\n", "src/a/mod.rs": "mod b;\n", "src/a/b/deep.rs": "// deep\n"})
	sum := sha256.Sum256(tb)
	c.Checksum = hex.EncodeToString(sum[:])
	i = Instance{Crate: c, Regdir: "127.0.0.1-7a7a96776db27b19"}
	os.MkdirAll(filepath.Dir(r.Tarball(i)), 0o755)
	os.MkdirAll(filepath.Dir(r.Extraction(i)), 0o755)
	if err := os.WriteFile(r.Tarball(i), tb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := extract(r.Tarball(i), c, r.Extraction(i)); err != nil {
		t.Fatal(err)
	}
	return r, i, r.Extraction(i) + ".tmp"
}

// Rule: a repair in place (beside pinned builds, where directories cannot
// be exchanged) brings every kind of damage back, keeps the extraction's
// directory and every path that was intact, and leaves a reader's open
// file readable.
func TestPatchInPlaceRepairsWithoutMissingPaths(t *testing.T) {
	r, i, tmp := patchedCrate(t)
	root := r.Extraction(i)
	var before unix.Stat_t
	unix.Lstat(root, &before)
	open, err := os.Open(filepath.Join(root, "Cargo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	os.Remove(filepath.Join(root, "src", "lib.rs"))
	os.RemoveAll(filepath.Join(root, "src", "a", "b"))
	os.Truncate(filepath.Join(root, "README"), 1)
	os.WriteFile(filepath.Join(root, markerName), nil, 0o644)
	if f := r.fullCheck(i, Files, false); f.Verdict != Broken {
		t.Fatalf("damage not seen: %v", f.Verdict)
	}
	m, err := extract(r.Tarball(i), i.Crate, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.patchInPlace(tmp, root, m); err != nil {
		t.Fatal(err)
	}
	if f := r.fullCheck(i, Deep, false); f.Verdict != Healthy {
		t.Fatalf("after the patch: %v %s", f.Verdict, f.Reason)
	}
	var after unix.Stat_t
	if unix.Lstat(root, &after); after.Ino != before.Ino {
		t.Error("the extraction's directory was replaced")
	}
	if b := make([]byte, 9); func() bool { n, _ := open.ReadAt(b, 0); return string(b[:n]) != "[package]" }() {
		t.Error("a file opened before the patch is no longer readable")
	}
}

// Rule: patching in place removes nothing: a file where the manifest has a
// directory is an error (the repair then waits for the exclusive lock),
// and that file is left.
func TestPatchInPlaceRemovesNothing(t *testing.T) {
	r, i, tmp := patchedCrate(t)
	root := r.Extraction(i)
	os.RemoveAll(filepath.Join(root, "src", "a"))
	os.WriteFile(filepath.Join(root, "src", "a"), []byte("in the way"), 0o644)
	m, err := extract(r.Tarball(i), i.Crate, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.patchInPlace(tmp, root, m); err == nil {
		t.Fatal("patched over a file where a directory belongs")
	}
	if b, err := os.ReadFile(filepath.Join(root, "src", "a")); err != nil || string(b) != "in the way" {
		t.Errorf("the file in the way was changed: %q, %v", b, err)
	}
}
