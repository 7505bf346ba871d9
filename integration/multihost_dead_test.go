package integration

import (
	"github.com/cargo-shim/cargo-shim/shim/admin"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EngineEnv names the engine `make multihost` runs on and its directory
// ("cephfs DIR"): the dead-host tests kill one client through the engine's
// script (integration/multihost/ENGINE kill b DIR) and mount it again after.
const EngineEnv = "CARGO_SHIM_TEST_MULTIHOST_ENGINE"

// engineCtl runs the engine's script with verb and client; it skips the
// test when the engine cannot kill a client.
func engineCtl(t *testing.T) func(verb, client string) {
	e := strings.Fields(os.Getenv(EngineEnv))
	if len(e) != 2 || e[0] != "cephfs" {
		t.Skipf("needs %s=\"cephfs DIR\" (make multihost): only that engine kills a client", EngineEnv)
	}
	return func(verb, client string) {
		out, err := exec.Command(filepath.Join("multihost", e[0]), verb, client, e[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("multihost/%s %s %s: %v\n%s", e[0], verb, client, err, out)
		}
	}
}

// A host dies (kill -9 of its ceph-fuse) while its build holds every crate
// shared. A runner on the other host that must repair one of those crates
// waits only until the filesystem evicts the dead host, says whom it waits
// for (the dead run's pid, from its holder note) and what bounds the wait,
// then repairs and builds. (It may block before it reaches flat's lock: on
// CephFS a file the dead host made cannot be looked up until the MDS evicts
// that host; then it says so.)
func TestMultihostHostDiesHoldingLocks(t *testing.T) {
	needHosts(t)
	ctl := engineCtl(t)
	w := NewWorld(t)
	w.Warm() // home 1: host B
	// Host A has used the registry since (home 2): CephFS makes any lookup
	// of what a host created and still caches wait for that host, and, once
	// it died, for its eviction. A host that dies in the middle of its
	// build, not seconds after creating the registry's directories, leaves
	// only its locks and its note behind.
	w.MustCargo(w.Home(), true, "build")
	held, open := w.StartHeldBuild()
	// Registered after NewWorld's cleanups: runs before them, so the
	// world's files can be removed through a live mount.
	t.Cleanup(func() {
		ctl("remount", "b")
		// The next test starts once the new client sees A's files.
		probe := filepath.Join(multihostMounts()[0], "remount-probe-"+strconv.Itoa(os.Getpid()))
		os.WriteFile(probe, nil, 0o644)
		waitFor(t, "the remounted client to see the other's files", time.Minute, func() bool {
			_, err := os.Stat(filepath.Join(multihostMounts()[1], filepath.Base(probe)))
			return err == nil
		})
		os.Remove(probe)
		open()
		held.KillGroup()
		held.Wait()
	})
	// The held build's holder publishes its note once cargo has run a
	// while (a no-op build is over before): the host dies after that.
	holder := "pid " + strconv.Itoa(held.Cmd.Process.Pid) + " on host "
	waitFor(t, "the held build's holder note", 2*time.Minute, func() bool {
		ents, _ := os.ReadDir(filepath.Join(w.Shared, ".cargo-shim", "holders"))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), strconv.Itoa(held.Cmd.Process.Pid)+"@") {
				return true
			}
		}
		return false
	})
	rm(t, filepath.Join(w.Extraction("flat-1.0.0"), "lib.rs")) // through A
	ctl("kill", "b")
	killed := time.Now()
	r := w.Cargo(w.Home(), true, []string{"build"}) // home 4: host A
	t.Logf("the runner on A finished %s after B's ceph-fuse was killed", time.Since(killed).Round(time.Second))
	if r.Code != 0 {
		t.Fatalf("the runner on the surviving host failed: %s", r)
	}
	// It waits either for flat's lock or, stuck in a lookup of a file the
	// dead host made, for the filesystem; either way it says for whom.
	named := false
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.Contains(l, "Blocking") {
			t.Logf("its waiting message: %s", strings.TrimSpace(l))
			named = named || strings.Contains(l, holder) && strings.Contains(l, "session_timeout")
		}
	}
	if !named {
		t.Errorf("no waiting message names the dead host's run (%s...) and what bounds the wait:\n%s", holder, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "Repairing flat v1.0.0") {
		t.Errorf("flat was not repaired:\n%s", r.Stderr)
	}
	w.AssertHealthy()
}

// status measures what flock does on the registry instead of quoting the
// documentation: through a second mount of the filesystem (another client),
// an exclusive flock here excludes a shared one there. On CephFS it names
// the session timeout that bounds a wait for a dead host's locks, read from
// the cluster.
func TestMultihostStatusMeasuresLockReach(t *testing.T) {
	needHosts(t)
	w := NewWorld(t)
	w.Warm()
	w.MustCargo(w.Home(), true, "build")
	cmd := exec.Command(filepath.Join(binDir, "cargo-shim"), "status", "--json")
	cmd.Env = append(w.Env(w.Home(), true), "CARGO_SHIM_REGISTRY="+w.Shared)
	e := strings.Fields(os.Getenv(EngineEnv))
	if len(e) == 2 && e[0] == "cephfs" {
		cmd.Env = append(cmd.Env, "CEPH_CONF="+filepath.Join(e[1], "ceph.conf"))
	}
	out, _ := cmd.Output() // exit 1: attention items (no shim on PATH)
	st := decode[admin.StatusReport](t, Result{Stdout: string(out)})
	p := st.LockProbe
	t.Logf("%s: %s; %s", st.Filesystem, p, st.EvictionBound)
	if p.OtherMount == "" || !p.ExcludesOtherMount || !p.ReleasedOtherMount || !p.ExcludesHere || !st.LocksReachOtherHosts {
		t.Errorf("status on %s did not measure exclusion across the two mounts: %+v (reach %v: %s)", st.Filesystem, p, st.LocksReachOtherHosts, st.LocksNote)
	}
	// The second mount must be the other client, not this one again.
	if other := multihostMounts()[1]; !strings.HasPrefix(p.OtherMount, other+"/") {
		t.Errorf("the probe's second mount %q is not the other client's (%s)", p.OtherMount, other)
	}
	if len(e) == 2 && e[0] == "cephfs" && !strings.Contains(st.EvictionBound, "session_timeout 30 s") {
		t.Errorf("status on CephFS does not name the cluster's session timeout (30 s): %q", st.EvictionBound)
	}
}

// Cold starts on two hosts, plain cargo beside the shim in the same run: K
// runners at once on an empty registry (downloads slowed, so that they
// overlap), each round in a fresh world, half the runners on each mount.
// Every run through the shim must pass; plain cargo's failures are counted
// and logged (they are a race: the rate is reported, not asserted).
func TestMultihostColdStartsBesidePlainCargo(t *testing.T) {
	needHosts(t)
	k, rounds := runnerCount(), 3
	failed, runs := map[bool]int{}, map[bool]int{}
	for round := 0; round < rounds; round++ {
		for _, viaShim := range []bool{false, true} {
			w := NewWorld(t)
			w.Lock()
			w.Reg.SetDownloadDelay(100 * time.Millisecond)
			procs := make([]*Proc, k)
			for n := range procs {
				procs[n] = w.Start(w.Workspace(n), w.Home(), viaShim, []string{"build"})
			}
			for n, p := range procs {
				runs[viaShim]++
				if r := p.Wait(); r.Code != 0 {
					failed[viaShim]++
					if viaShim {
						t.Errorf("round %d: runner %d through the shim failed on a cold registry: %s", round, n, r)
					} else {
						t.Logf("round %d: plain runner %d: %s", round, n, firstLine(r.Stderr, "error"))
					}
				}
			}
		}
	}
	t.Logf("cold starts on two hosts: plain cargo failed %d of %d runs, through the shim %d of %d", failed[false], runs[false], failed[true], runs[true])
}
