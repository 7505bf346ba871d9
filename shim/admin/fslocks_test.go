package admin

import "testing"

func TestLocksOn(t *testing.T) {
	for _, tc := range []struct {
		fs, opts    string
		reach       bool
		cargoLocked bool
	}{
		{"fuse.glusterfs", "rw,relatime,user_id=0", true, true},
		{"ceph", "rw,name=admin", true, true},
		{"nfs4", "rw,vers=4.2,local_lock=none", true, false},
		{"nfs4", "rw,vers=4.1,local_lock=flock", false, false},
		{"nfs", "rw,vers=3,local_lock=none", true, false},
		{"nfs", "rw,vers=3,nolock", false, false},
		{"nfs", "rw,vers=3,local_lock=posix", true, false},
		{"fuse.sshfs", "rw", false, true},
		{"ext4", "rw,relatime", false, true},
		{"xfs", "rw", false, true},
		{"overlay", "rw", false, true},
		{"tmpfs", "rw", false, true},
	} {
		got := LocksOn(tc.fs, tc.opts)
		if got.Reach != tc.reach {
			t.Errorf("%s (%s): reach=%v, want %v: %s", tc.fs, tc.opts, got.Reach, tc.reach, got.Note)
		}
		if locked := got.CargoLocks == cargoLocks; locked != tc.cargoLocked {
			t.Errorf("%s: cargo's locks %q", tc.fs, got.CargoLocks)
		}
		if got.Note == "" || got.ColdStarts == "" {
			t.Errorf("%s: empty note %+v", tc.fs, got)
		}
	}
}

// On a local filesystem the probe measures every lock it tries, and finds
// no second client to try.
func TestProbeFlockLocal(t *testing.T) {
	p := ProbeFlock(t.TempDir())
	if p.Error != "" || !p.SharedOnReadOnly || !p.ExclusiveOnReadOnly || !p.ExclusiveOnReadWrite || !p.ExcludesHere {
		t.Errorf("probe on a local directory: %+v", p)
	}
	if _, _, ok := p.Reach(); ok && p.OtherMount == "" {
		t.Errorf("a verdict on other hosts without a second mount: %+v", p)
	}
}
