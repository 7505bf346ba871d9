package safefs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// raceTries: the path-based Mkdir-then-Chmod lost this race to the same
// racer within a few hundred tries (see TestMkdirChmodRaceIsReal).
const raceTries = 20000

// racer swaps whatever directory appears at dir for a symlink to target,
// as fast as it can, until stop is closed: another uid attacking the gap
// between a mkdir and a chmod.
func racer(t *testing.T, dir, target string, stop chan struct{}) *sync.WaitGroup {
	stash := filepath.Join(filepath.Dir(dir), "stash")
	os.Mkdir(stash, 0o700)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if os.Rename(dir, filepath.Join(stash, fmt.Sprint(n))) == nil {
				os.Symlink(target, dir)
			}
		}
	}()
	return &wg
}

func raceSetup(t *testing.T) (root, target string) {
	base := t.TempDir()
	root, target = filepath.Join(base, "root"), filepath.Join(base, "target")
	os.Mkdir(root, 0o755)
	os.Mkdir(target, 0o755)
	return root, target
}

// TestMkdirRaceCannotBeWon: the racer never gets MkdirAll to chmod (or
// create anything in) the directory it points the new name at.
func TestMkdirRaceCannotBeWon(t *testing.T) {
	modes(t, func(t *testing.T, open func(string) *Dir) {
		root, target := raceSetup(t)
		d := open(root)
		stop := make(chan struct{})
		wg := racer(t, filepath.Join(root, "x"), target, stop)
		var made, refused int
		for range raceTries {
			s, err := d.MkdirAll("x/y", Shared)
			if err == nil {
				made++
				s.Close()
			} else {
				refused++
			}
			d.Remove("x") // the link the racer left, or our directory
		}
		close(stop)
		wg.Wait()
		fi, _ := os.Lstat(target)
		ents, _ := os.ReadDir(target)
		if fi.Mode().Perm() != 0o755 || fi.Mode()&os.ModeSticky != 0 || len(ents) != 0 {
			t.Fatalf("racer won: target is %v with %d entries", fi.Mode(), len(ents))
		}
		t.Logf("%d tries: %d made, %d refused (symlink swapped in)", raceTries, made, refused)
		if refused == 0 {
			t.Error("the racer never swapped a link in: the test did not race")
		}
	})
}

// TestMkdirChmodRaceIsReal shows the racer above is a real attacker: the
// path-based Mkdir-then-Chmod the store used to do loses to it.
func TestMkdirChmodRaceIsReal(t *testing.T) {
	root, target := raceSetup(t)
	stop := make(chan struct{})
	wg := racer(t, filepath.Join(root, "x"), target, stop)
	var tries atomic.Int64
	for range raceTries {
		tries.Add(1)
		p := filepath.Join(root, "x")
		if os.Mkdir(p, 0o777) == nil {
			os.Chmod(p, 0o777|os.ModeSticky)
		}
		if fi, _ := os.Lstat(target); fi.Mode()&os.ModeSticky != 0 {
			break
		}
		os.Remove(p)
	}
	close(stop)
	wg.Wait()
	fi, _ := os.Lstat(target)
	if fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("the racer never won against Mkdir+Chmod(path) in %d tries", raceTries)
	}
	t.Logf("Mkdir+Chmod(path) lost after %d tries", tries.Load())
}
