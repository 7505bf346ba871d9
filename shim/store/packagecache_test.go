package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRegistryShared(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.MkdirAll(filepath.Join(home, "registry"), 0o755)
	if RegistryShared(home, filepath.Join(home, "registry")) {
		t.Error("a plain directory inside the home is nobody else's")
	}
	if !RegistryShared(home, filepath.Join(dir, "elsewhere")) {
		t.Error("CARGO_SHIM_REGISTRY outside the home is shared")
	}
	linked := filepath.Join(dir, "linked")
	os.MkdirAll(linked, 0o755)
	os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(linked, "registry"))
	if !RegistryShared(linked, filepath.Join(linked, "registry")) {
		t.Error("a symlinked registry is shared")
	}
	if RegistryShared(filepath.Join(dir, "none"), filepath.Join(dir, "none", "registry")) {
		t.Error("a registry that is not there yet is not shared")
	}
}

// A laptop's home keeps cargo's plain files, and a link an earlier version
// made (into a directory a wipe removes) becomes a plain file again.
func TestShareCargoLockLeavesAnUnsharedHomePlain(t *testing.T) {
	home := t.TempDir()
	reg := Registry{Root: filepath.Join(home, "registry")}
	os.MkdirAll(reg.Root, 0o755)
	old := filepath.Join(reg.Root, ".cargo-shim", "cargo", ".package-cache")
	os.Symlink(old, filepath.Join(home, ".package-cache"))
	os.Symlink("/somewhere/of/the/user", filepath.Join(home, ".package-cache-mutate"))
	shared, err := reg.SharePackageCacheLock(home, ShareAuto)
	if err != nil || shared {
		t.Fatalf("shared=%v err=%v", shared, err)
	}
	if fi, err := os.Lstat(filepath.Join(home, ".package-cache")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the shim's old link is not a plain file again: %v %v", fi, err)
	}
	if target, _ := os.Readlink(filepath.Join(home, ".package-cache-mutate")); target != "/somewhere/of/the/user" {
		t.Errorf("a link the shim did not make was changed: %q", target)
	}
}

// A shared home's links name files in the registry root; a wipe of the
// registry's contents is healed by the next run, and the warm path then
// finds everything in place.
func TestShareCargoLockHealsAWipe(t *testing.T) {
	home := t.TempDir()
	reg := Registry{Root: filepath.Join(home, "registry")}
	os.MkdirAll(reg.Root, 0o755)
	for round := 0; round < 2; round++ {
		shared, err := reg.SharePackageCacheLock(home, ShareAlways)
		if err != nil || !shared {
			t.Fatalf("round %d: shared=%v err=%v", round, shared, err)
		}
		for _, n := range cargoLockNames {
			target, err := os.Readlink(filepath.Join(home, n[0]))
			if err != nil || filepath.Dir(target) != reg.Root {
				t.Fatalf("round %d: %s -> %q (%v): want a link into the registry root", round, n[0], target, err)
			}
			if _, err := os.Stat(target); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if !reg.warmShared(home) {
			t.Fatalf("round %d: the warm path does not see a healed home", round)
		}
		// A plain cargo made the file with its umask: the next run widens it.
		os.Chmod(reg.DownloadLock(), 0o644)
		if reg.warmShared(home) {
			t.Fatalf("round %d: the warm path trusts a lock file other runner uids cannot open", round)
		}
		reg.SharePackageCacheLock(home, ShareAlways)
		if fi, _ := os.Stat(reg.DownloadLock()); fi.Mode().Perm() != 0o666 {
			t.Fatalf("round %d: the lock file was not widened: %v", round, fi.Mode())
		}
		ents, _ := os.ReadDir(reg.Root)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(reg.Root, e.Name()))
		}
		if reg.warmShared(home) {
			t.Fatalf("round %d: the warm path trusts links into a wiped registry", round)
		}
	}
}

// BenchmarkShareCargoLockWarm is what the healing costs every run of a
// shared home: two readlinks and a stat.
func BenchmarkShareCargoLockWarm(b *testing.B) {
	home := b.TempDir()
	reg := Registry{Root: filepath.Join(home, "registry")}
	os.MkdirAll(reg.Root, 0o755)
	if _, err := reg.SharePackageCacheLock(home, ShareAlways); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := reg.SharePackageCacheLock(home, ShareAlways); !ok {
			b.Fatal("not shared")
		}
	}
}

// BenchmarkShareCargoLockUnshared: a laptop's home, every run.
func BenchmarkShareCargoLockUnshared(b *testing.B) {
	home := b.TempDir()
	reg := Registry{Root: filepath.Join(home, "registry")}
	os.MkdirAll(reg.Root, 0o755)
	os.WriteFile(filepath.Join(home, ".package-cache"), nil, 0o644)
	for b.Loop() {
		if ok, _ := reg.SharePackageCacheLock(home, ShareAuto); ok {
			b.Fatal("shared")
		}
	}
}

// BenchmarkShareCargoLockBaseline is the warm path before healing existed
// (a stat of the registry root and two readlinks), for comparison.
func BenchmarkShareCargoLockBaseline(b *testing.B) {
	home := b.TempDir()
	reg := Registry{Root: filepath.Join(home, "registry")}
	os.MkdirAll(reg.Root, 0o755)
	reg.SharePackageCacheLock(home, ShareAlways)
	for b.Loop() {
		os.MkdirAll(reg.Root, 0o755)
		for _, n := range cargoLockNames {
			os.Readlink(filepath.Join(home, n[0]))
		}
	}
}

// Root links its home only to lock files no other uid can replace: not in
// a registry root others write (0777), and in a sticky one (01777) only
// once the files are root's (a root run makes them so).
func TestRootSharesOnlyWhatNoOtherUidCanReplace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the rule is root's")
	}
	home := t.TempDir()
	reg := Registry{Root: filepath.Join(t.TempDir(), "shared")}
	os.MkdirAll(reg.Root, 0o755)
	os.Chmod(reg.Root, 0o777)
	shared, err := reg.SharePackageCacheLock(home, ShareAlways)
	if shared || !errors.Is(err, ErrNotSafeForRoot) {
		t.Fatalf("world-writable registry root: shared=%v err=%v", shared, err)
	}
	if _, err := os.Readlink(filepath.Join(home, ".package-cache")); err == nil {
		t.Fatal("root's home links into a registry root other uids write")
	}
	if reg.RootShareRefusal() == "" {
		t.Error("status does not say why root does not share")
	}
	os.Chmod(reg.Root, 0o777|os.ModeSticky)
	os.Chown(reg.DownloadLock(), 65534, 65534)
	shared, err = reg.SharePackageCacheLock(home, ShareAlways)
	if !shared || err != nil {
		t.Fatalf("sticky root-owned registry root: shared=%v err=%v", shared, err)
	}
	var st unix.Stat_t
	if unix.Lstat(reg.DownloadLock(), &st); st.Uid != 0 || st.Mode&0o777 != 0o666 {
		t.Errorf("another uid's lock file was not made root's: uid %d mode %o", st.Uid, st.Mode)
	}
	if reg.RootShareRefusal() != "" {
		t.Errorf("status says root does not share: %s", reg.RootShareRefusal())
	}
}
