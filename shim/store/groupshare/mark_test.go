package groupshare

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The mark alone does not make a registry group-shared: a uid that can
// write into .cargo-shim must not be able to turn the mode on.
func TestReadNeedsTheRegistrysOwnGroupAndSetgid(t *testing.T) {
	root := t.TempDir()
	gid := os.Getegid()
	if st := Read(root); st.Shared || st.Stale != "" {
		t.Fatalf("no mark: %+v", st)
	}
	os.MkdirAll(filepath.Join(root, shimDirName), 0o777)
	os.WriteFile(MarkPath(root), []byte(strconv.Itoa(gid)+"\n"), 0o644)
	if st := Read(root); st.Shared || st.Stale == "" {
		t.Fatalf("a mark on a registry that is not setgid: %+v", st)
	}
	if err := os.Chmod(root, 0o775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if st := Read(root); !st.Shared || st.Gid != gid {
		t.Fatalf("mark, group and setgid agree: %+v", st)
	}
	os.WriteFile(MarkPath(root), []byte(strconv.Itoa(gid+1)+"\n"), 0o644)
	if st := Read(root); st.Shared {
		t.Fatalf("a mark naming another group than the registry's: %+v", st)
	}
}

func TestUmaskKeepsWhatTheCallerWithholdsFromOthers(t *testing.T) {
	for old, want := range map[int]int{0o022: 0o002, 0o077: 0o007, 0o002: 0o002, 0o027: 0o007} {
		if got := Umask(old); got != want {
			t.Errorf("Umask(%04o) = %04o, want %04o", old, got, want)
		}
	}
}
