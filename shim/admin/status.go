package admin

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// LockHolder is one lock held now on a crate's lock file (/proc/locks).
type LockHolder struct {
	Crate   string `json:"crate"`
	Version string `json:"version"`
	Regdir  string `json:"regdir"`
	Mode    string `json:"mode"` // "shared" or "exclusive"
	Pid     int    `json:"pid"`
	Command string `json:"command"`
	// The process the lock is held for: a holder's parent (the cargo the
	// shim exec'd), else the locker itself. A shim run on a local disk takes
	// its locks itself and hands them to its holder; /proc/locks then names
	// the run, which is its cargo since the exec.
	ForPid     int    `json:"for_pid,omitempty"`
	ForCommand string `json:"for_command,omitempty"`
}

// StatusReport is `cargo-shim status --json`.
type StatusReport struct {
	Version         string `json:"version"`
	PathCargo       string `json:"path_cargo"`
	PathCargoIsShim bool   `json:"path_cargo_is_shim"`
	RealCargo       string `json:"real_cargo"`
	Registry        string `json:"registry"`
	// RegistryTarget is Registry with symlinks resolved: the directory
	// the runners really share.
	RegistryTarget       string       `json:"registry_target"`
	Filesystem           string       `json:"filesystem"`
	MountOptions         string       `json:"mount_options"`
	LocksReachOtherHosts bool         `json:"locks_reach_other_hosts"`
	LocksNote            string       `json:"locks_note"`
	Extractions          int          `json:"extractions"`
	Tarballs             int          `json:"tarballs"`
	LockFiles            int          `json:"lock_files"`
	Locked               []LockHolder `json:"locked"`
	CargoAutoGC          string       `json:"cargo_auto_gc"`
	// CargoAutoGCMode is CargoAutoGC as a word: "off" (the shim turns it
	// off) or "user" (CARGO_CACHE_AUTO_CLEAN_FREQUENCY is set).
	CargoAutoGCMode string `json:"cargo_auto_gc_mode"`
	CargoLockShared bool   `json:"cargo_lock_shared"`
	// CargoLockRoot says why root runs keep their own cargo lock on this
	// registry (empty: they share it), docs/package-cache-lock.md.
	CargoLockRoot string `json:"cargo_lock_root_unshared,omitempty"`
	GroupStatus
	// RegistryMismatch: CARGO_SHIM_REGISTRY names another directory than
	// the one $CARGO_HOME/registry resolves to ("" when it does not).
	RegistryMismatch string `json:"registry_mismatch,omitempty"`
	// Formats is what registry/.cargo-shim/format declares ("" when
	// nothing, as on a registry only older releases used), and
	// FormatMismatch a lock layout other than this release's.
	Formats        string `json:"formats,omitempty"`
	FormatMismatch string `json:"format_mismatch,omitempty"`
	CargoLocks     string `json:"cargo_locks"`
	// Git is the git directory beside the registry, when there is one.
	Git        *GitStatus `json:"git,omitempty"`
	ColdStarts string     `json:"cold_starts"`
	// LockModes is what flock measurably does with each open mode on the
	// registry's filesystem (a scratch file in .cargo-shim/; nil when there
	// is no registry yet); LockProbe, below, adds the reach across mounts.
	LockModes *lockfile.Probe `json:"lock_modes"`
	// Attention lists what needs a person; status exits 1 when it is not
	// empty.
	Attention []Attention `json:"attention"`

	// LockProbe is flock measured in the registry (ProbeFlock); when it
	// could try a second mount, it decides LocksReachOtherHosts.
	LockProbe LockProbe `json:"lock_probe"`
	// EvictionBound says how long the locks of a host that died outlive it
	// (CephFS: the MDS's session_timeout), where that is known.
	EvictionBound string `json:"eviction_bound,omitempty"`
}

// Attention is one thing status found wrong: Code is a machine word
// ("shim-not-first", "no-real-cargo", "locks-stay-on-host", ...), Detail
// says it for people and Help what to do.
type Attention struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Help   string `json:"help"`
}

// attention derives what needs a person from the facts gathered.
func (st *StatusReport) attention() []Attention {
	out := []Attention{}
	switch {
	case st.PathCargo == "":
		out = append(out, Attention{"no-cargo", "no cargo on PATH", "install rustup or cargo, then put cargo-shim's drop-in first on PATH"})
	case !st.PathCargoIsShim:
		out = append(out, Attention{"shim-not-first", "cargo on PATH (" + st.PathCargo + ") is not cargo-shim's drop-in: builds run unprotected", "put the drop-in's directory first on PATH (`make install` prints the line)"})
	case st.RealCargo == "":
		out = append(out, Attention{"no-real-cargo", "the drop-in finds no real cargo after itself on PATH", "install cargo (rustup), or set CARGO_SHIM_REAL_CARGO"})
	}
	if st.RegistryMismatch != "" {
		out = append(out, Attention{"registry-mismatch", st.RegistryMismatch + ": builds through the drop-in run unprotected", shim.RegistryFix + " (an admin looking at another registry: --registry DIR)"})
	}
	if st.FormatMismatch != "" {
		out = append(out, Attention{"lock-layout", st.FormatMismatch, "see docs/upgrading.md"})
	}
	if networkFS(st.Filesystem) && !st.LocksReachOtherHosts {
		out = append(out, Attention{"locks-stay-on-host", st.LocksNote, "runners on other hosts are not coordinated; see docs/limitations.md"})
	}
	if p := st.LockModes; p != nil && !p.OK() {
		out = append(out, Attention{"locks-refused", "the registry's filesystem (" + p.Filesystem + ") does not give the locks cargo-shim takes: " + p.Summary(), "see docs/nfs.md for the NFS mount options (local_lock, nolock) and lock services (rpc.statd, lockd) locks need"})
	}
	if st.GroupStatus.Shared && len(st.Unwritable) > 0 {
		out = append(out, Attention{"group-cannot-write", fmt.Sprintf("the sharing group cannot write %s", strings.Join(st.Unwritable, ", ")), "run `cargo-shim init --group " + st.Group + "` again"})
	}
	return out
}

// networkFS says whether a registry on fs can be shared between hosts.
func networkFS(fs string) bool {
	switch fs {
	case "ceph", "gpfs", "lustre", "cifs", "smb2", "smb3", "glusterfs":
		return true
	}
	return strings.HasPrefix(fs, "nfs") || strings.HasPrefix(fs, "fuse")
}

// Status gathers what an operator needs to see. mismatch is
// shim.Config.RegistryMismatch of the drop-in's settings in this
// environment.
func Status(reg store.Registry, cargoHome, mismatch string) *StatusReport {
	st := &StatusReport{Version: shim.Version, Registry: reg.Root, RegistryTarget: reg.Root, Locked: []LockHolder{}, RegistryMismatch: mismatch}
	if real, err := filepath.EvalSymlinks(reg.Root); err == nil {
		st.RegistryTarget = real
	}
	if p, err := exec.LookPath("cargo"); err == nil {
		st.PathCargo = p
		cmd := exec.Command(p, "--version")
		cmd.Env = append(os.Environ(), shim.ProbeEnv+"=1")
		out, _ := cmd.Output()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "cargo-shim ") {
				st.PathCargoIsShim = true
			}
			if v, ok := strings.CutPrefix(line, "real-cargo "); ok {
				st.PathCargoIsShim = true
				st.RealCargo = v
			}
		}
		if !st.PathCargoIsShim {
			st.RealCargo = p
		}
	}
	st.Filesystem, st.MountOptions = filesystemOf(reg.Root)
	lr := LocksOn(st.Filesystem, st.MountOptions)
	st.LocksReachOtherHosts, st.LocksNote, st.CargoLocks, st.ColdStarts = lr.Reach, lr.Note, lr.CargoLocks, lr.ColdStarts
	st.LockProbe = LockProbe{Error: "no " + reg.ShimDir() + " yet"}
	if fi, err := os.Lstat(reg.ShimDir()); err == nil && fi.IsDir() {
		st.LockProbe = ProbeFlock(reg.ShimDir())
	}
	if reach, note, ok := st.LockProbe.Reach(); ok {
		st.LocksReachOtherHosts, st.LocksNote = reach, note+"; "+lr.Note
	}
	st.EvictionBound = evictionNote(st.Filesystem)
	if fi, err := os.Stat(reg.Root); err == nil && fi.IsDir() {
		p := lockfile.ProbeLocks(reg.ShimDir())
		st.LockModes = &p
	}
	for _, d := range reg.Regdirs() {
		st.Extractions += countEntries(reg, filepath.Join(reg.Root, "src", d), func(e os.DirEntry) bool {
			return e.IsDir() && !strings.HasPrefix(e.Name(), ".")
		})
		st.Tarballs += countEntries(reg, filepath.Join(reg.Root, "cache", d), func(e os.DirEntry) bool {
			return strings.HasSuffix(e.Name(), ".crate")
		})
		st.LockFiles += countEntries(reg, filepath.Join(reg.ShimDir(), "locks", d), func(e os.DirEntry) bool {
			return strings.HasSuffix(e.Name(), ".lock")
		})
	}
	st.Locked = lockHolders(reg)
	st.Formats, st.FormatMismatch = formats(reg)
	if dir := GitDirOf(reg); dir != "" {
		st.Git = gitStatus(dir)
	}
	st.GroupStatus = groupStatus(reg.Root)
	// Run as `cargo shim status`, the drop-in has set the variable itself.
	if v := os.Getenv("CARGO_CACHE_AUTO_CLEAN_FREQUENCY"); v != "" && !(v == "never" && os.Getenv(shim.ActiveEnv) != "") {
		st.CargoAutoGC = "as set in CARGO_CACHE_AUTO_CLEAN_FREQUENCY: " + v
		st.CargoAutoGCMode = "user"
	} else {
		st.CargoAutoGC = "off for runs through the shim (it sets CARGO_CACHE_AUTO_CLEAN_FREQUENCY=never)"
		st.CargoAutoGCMode = "off"
	}
	if cur, err := os.Readlink(filepath.Join(cargoHome, ".package-cache")); err == nil && cur == reg.DownloadLock() {
		st.CargoLockShared = true
	}
	st.CargoLockRoot = reg.RootShareRefusal()
	st.Attention = st.attention()
	return st
}

func countEntries(reg store.Registry, dir string, keep func(os.DirEntry) bool) int {
	ents, err := reg.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if keep(e) {
			n++
		}
	}
	return n
}

// filesystemOf names the filesystem holding p and its mount's options.
func filesystemOf(p string) (string, string) { return store.FilesystemOf(p) }

// lockHolders reads /proc/locks and names the crate of each lock on a lock
// file of this registry.
func lockHolders(reg store.Registry) []LockHolder {
	type key struct {
		maj, min uint32
		ino      uint64
	}
	files := map[key]store.Instance{}
	for _, d := range reg.Regdirs() {
		dir := filepath.Join(reg.ShimDir(), "locks", d)
		ents, _ := reg.ReadDir(dir)
		for _, e := range ents {
			stem, ok := strings.CutSuffix(e.Name(), ".lock")
			if !ok {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			i, ok := store.ParseInstance(d, stem)
			if !ok {
				continue
			}
			files[key{unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino}] = i
		}
	}
	out := []LockHolder{}
	for _, l := range procFlocks() {
		i, ok := files[key{l.maj, l.min, l.ino}]
		if !ok {
			continue
		}
		h := LockHolder{Crate: i.Name, Version: i.Version, Regdir: i.Regdir, Mode: l.mode, Pid: l.pid, Command: cmdline(l.pid)}
		h.ForPid, h.ForCommand = h.Pid, h.Command
		if h.Command == "cargo-shim-holder" {
			h.ForPid = parentOf(l.pid)
			h.ForCommand = cmdline(h.ForPid)
		}
		out = append(out, h)
	}
	return out
}

// flockLine is one flock(2) lock of /proc/locks.
type flockLine struct {
	maj, min uint32
	ino      uint64
	pid      int
	mode     string // "shared" or "exclusive"
}

// procFlocks lists the flock locks held now on this host.
func procFlocks() []flockLine {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []flockLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[1] != "FLOCK" {
			continue
		}
		dev := strings.Split(fields[5], ":")
		if len(dev) != 3 {
			continue
		}
		maj, _ := strconv.ParseUint(dev[0], 16, 32)
		min, _ := strconv.ParseUint(dev[1], 16, 32)
		ino, _ := strconv.ParseUint(dev[2], 10, 64)
		pid, _ := strconv.Atoi(fields[4])
		mode := "shared"
		if fields[3] == "WRITE" {
			mode = "exclusive"
		}
		out = append(out, flockLine{uint32(maj), uint32(min), ino, pid, mode})
	}
	return out
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	if k := strings.LastIndexByte(s, ')'); k >= 0 {
		f := strings.Fields(s[k+1:])
		if len(f) > 1 {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// formats says what the registry declares, in a stable order, and whether
// its lock layout is this release's.
func formats(reg store.Registry) (string, string) {
	f, err := reg.Formats()
	if err != nil {
		return "", err.Error()
	}
	var parts []string
	for _, k := range []string{"locks", "state", "plan", "repaired"} {
		if n, ok := f[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if n, ok := f["locks"]; ok && n != store.LockLayout {
		return strings.Join(parts, ", "), fmt.Sprintf("the registry declares lock layout %d, this cargo-shim takes %d", n, store.LockLayout)
	}
	return strings.Join(parts, ", "), ""
}
