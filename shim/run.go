package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cargo-shim/cargo-shim/lockfile"
	"github.com/cargo-shim/cargo-shim/shim/events"
	"github.com/cargo-shim/cargo-shim/shim/gitstore"
	"github.com/cargo-shim/cargo-shim/shim/stats"
	"github.com/cargo-shim/cargo-shim/shim/store"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
	"golang.org/x/sys/unix"
)

// ActiveEnv is set for the cargo a shim execs. A shim that sees it runs
// under another shim's cargo (a build script calling cargo, cargo clippy
// calling cargo check), whose holder has shared locks on the crates: such a
// shim must never block on an exclusive lock, or the two would wait forever.
const ActiveEnv = "CARGO_SHIM_ACTIVE"

// ProbeEnv makes the drop-in describe itself instead of running cargo
// (`cargo-shim status` asks whether `cargo` on PATH is a shim).
const ProbeEnv = "CARGO_SHIM_PROBE"

// exitError is cargo's exit code for its own errors.
const exitError = 101

// processStart is when this process began running Go code, for the debug
// log's timings.
var processStart = time.Now()

// Main runs the drop-in `cargo`. It returns an exit code only when cargo
// could not be exec'd. The environment is read here, once: every setting
// the run uses comes from LoadConfig over this snapshot.
func Main(args []string) int {
	// A run lives a few milliseconds and then execs: collecting garbage is
	// wasted work. The limit brings the collector back for a huge plan.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(16 << 20)
	if lockfile.IsHolder() {
		return lockfile.RunHolder()
	}
	environ := os.Environ()
	getenv := LookupIn(environ)
	cwd, _ := os.Getwd()
	cfg, cfgErr := LoadConfig(getenv, cwd)
	log := NewLogger(os.Stderr, cfg.Log, getenv)
	self := resolvedSelf()

	// Another shim found us on PATH and exec'd us as the real cargo: pass
	// through, and look for cargo only after our own PATH entry.
	asReal := cfg.Execed != "" && sameExecutable(cfg.Execed, self)
	after := ""
	if asReal {
		after = self
	}
	real, err := FindRealCargo(cfg.RealCargo, cfg.Path, self, after)
	if cfg.Probe {
		// `cargo-shim status` asks whether `cargo` on PATH is a shim, and
		// which real cargo it runs (none found: no such line).
		fmt.Printf("cargo-shim %s\n", Version)
		if err == nil {
			fmt.Printf("real-cargo %s\n", real)
		}
		return 0
	}
	if err != nil {
		log.Error("%v", err)
		return exitError
	}
	cmd := Classify(args)
	log.Mode = Verbosity(cfg.Log, getenv, cmd)
	if cfg.Disable {
		// Pure pass-through: the caller's environment, plus only the
		// recursion guard (a second shim further on PATH must not loop).
		return execCargo(log, real, cmd, setEnv(environ, ExecedEnv, real), nil)
	}
	env := cargoEnv(environ, real)
	if asReal || cmd.Kind == PassThrough || cmd.Kind == Admin || cmd.Kind == Unplanned && cfg.ShareLock == store.ShareNever {
		return execCargo(log, real, cmd, env, nil)
	}
	if msg := cfg.RegistryMismatch(); msg != "" {
		// Before anything touches either directory: this home's links
		// must not be pointed at a registry its cargo does not use.
		if cfg.Strict {
			log.Error("%s (CARGO_SHIM_STRICT is set, so cargo was not run): %s", msg, RegistryFix)
			return exitError
		}
		log.Warn("%s; running cargo without the shim's protection: %s", msg, RegistryFix)
		return execCargo(log, real, cmd, env, nil)
	}
	if cfgErr != nil {
		if cfg.Strict {
			log.Error("%v", cfgErr)
			return exitError
		}
		log.Warn("%v; using defaults for those", cfgErr)
	}
	// Before any repair and before cargo: what both create must be
	// writable by the group on a group-shared registry.
	group := groupshare.ApplyUmask(cfg.Registry)
	r := &Run{Group: group, Cfg: cfg, Reg: store.Registry{Root: cfg.Registry}, Log: log, Cmd: cmd, Cwd: cwd, Self: self,
		Nested: cfg.Nested, Offline: cmd.Offline || cfg.NetOffline}
	if r.events = EventLog(cfg, getenv, "cargo", log); r.events != nil {
		r.Reg.Events = r.events
	}
	return r.exec(real, env)
}

// exec is Prepare, then the real cargo: with the planned set pinned, or, when
// Prepare failed, without the shim's protection (or not at all when strict).
func (r *Run) exec(real string, env []string) int {
	r.real, r.env = real, env
	r.Log.Debug("starting (%s since process start)", time.Since(processStart))
	r.note = selfNote(r.Cmd, time.Now())
	stop := r.watchStall()
	holder, err := r.Prepare()
	stop()
	r.Log.Debug("exec %s (%s since process start)", real, time.Since(processStart))
	switch {
	case err != nil && r.Cfg.Strict:
		r.Log.Error("%v (CARGO_SHIM_STRICT is set, so cargo was not run)", err)
		return exitError
	case err != nil:
		r.Log.Warn("%v; running cargo without the shim's protection%s", err, hint(r.Cfg.Registry, err))
		r.failOpen(failReason(err), err)
	case r.shareErr != nil:
		r.Log.Warn("%v%s", r.shareErr, hint(r.Cfg.Registry, r.shareErr))
		r.failOpen("share-lock", r.shareErr)
	}
	r.countRun()
	if err == nil && r.plan != nil {
		r.Log.Verbose("Checked", fmt.Sprintf("%d crates of Cargo.lock, locked until cargo exits (%s)", r.plan.Crates(), time.Since(r.start).Round(time.Millisecond)))
	}
	return execCargo(r.Log, real, r.Cmd, env, holder)
}

// hint is the fix for a permission failure, appended to the run's one
// warning.
func hint(registry string, err error) string {
	if h := groupshare.Hint(registry, err); h != "" {
		return ": " + h
	}
	return ""
}

// cargoEnv is the environment cargo gets: the caller's, plus cargo's
// automatic GC switched off (with many homes on one registry, a home whose
// GC database is old deletes what other homes use; `cargo-shim gc` is the
// lock-aware replacement) unless the user chose a frequency.
func cargoEnv(environ []string, real string) []string {
	env := environ
	if LookupIn(environ)("CARGO_CACHE_AUTO_CLEAN_FREQUENCY") == "" {
		env = setEnv(env, "CARGO_CACHE_AUTO_CLEAN_FREQUENCY", "never")
	}
	return setEnv(setEnv(env, ExecedEnv, real), ActiveEnv, "1")
}

// setEnv returns env with key set to value, replacing any earlier value (a
// shim under a shim inherits these; duplicates would be read differently by
// different programs).
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			continue
		}
		out = append(out, kv)
	}
	return append(out, key+"="+value)
}

func sameExecutable(p, self string) bool {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return self != "" && p == self
}

// execCargo replaces this process with the real cargo. The holder, if any,
// keeps the shared locks until cargo's process (this pid) exits.
func execCargo(log *Logger, real string, cmd Command, env []string, holder *lockfile.Holder) int {
	argv := []string{"cargo"}
	if cmd.Toolchain != "" {
		argv = append(argv, cmd.Toolchain)
	}
	argv = append(argv, cmd.Args...)
	if holder != nil {
		if err := holder.Hold(); err != nil {
			log.Warn("lock holder: %v", err)
		}
	}
	err := unix.Exec(real, argv, env)
	if holder != nil {
		holder.Stop()
	}
	log.Error("could not run %s: %v", real, err)
	return exitError
}

// Run is one drop-in invocation's plan-lock-check-repair.
type Run struct {
	Cfg     Config
	Reg     store.Registry
	Log     *Logger
	Cmd     Command
	Cwd     string
	Self    string
	Nested  bool
	Offline bool
	Group   groupshare.State // whether the registry is group-shared

	plan *store.Plan
	// planFrom: where the plan's Cargo.lock bytes came from; cargo
	// install's, put together from the index cache, are a store.Hint.
	planFrom store.Source
	start    time.Time
	// shareErr is reported after Prepare, unless a failure that stopped the
	// run is reported instead: one warning line per run, not two.
	shareErr error
	// shared: this home's cargo lock files name the registry's.
	shared   bool
	lockRead *cargoLockRead // the Cargo.lock, read once (cargoLock)
	// handOff: round 0 takes its locks itself and hands them to the
	// holder (lockfile.HandOff).
	handOff bool
	// rec is what this run did, for `cargo-shim stats`.
	rec stats.Record
	// events is the event log (nil: none).
	events *events.Log
	// real and env are the cargo and environment exec'd after Prepare
	// (and run for a fetch of git sources); gitLock is the Cargo.lock
	// that planned the git sources.
	real, gitLock string
	env           []string
	git           gitstore.Store
	gitSrcs       []gitstore.Source        // the planned git sources
	gitUnfetched  map[gitstore.Source]bool // still not in their db after the run's fetch
	gitPins       *gitstore.Pins           // the git sources pinned by this process until the holder has them
	// note is this run's holder note; waited: a waiting message was shown.
	note   lockfile.Note
	waited atomic.Bool
}

// lockWait times one operation that may wait for a lock: if it says it
// waited, the whole operation counts as one wait.
type lockWait struct {
	t0     time.Time
	waited atomic.Bool
	on     atomic.Pointer[waitOn] // what it waited for, for the event
}

func newLockWait() *lockWait { return &lockWait{t0: time.Now()} }

func (r *Run) endWait(w *lockWait) {
	if w.waited.Load() {
		d := time.Since(w.t0)
		r.rec.Wait(d)
		r.lockWaited(w, d)
	}
}

// saveStats adds this run's record to the registry's totals, unless the
// run did nothing (the warm path writes nothing).
func (r *Run) saveStats() {
	if r.rec.Empty() {
		return
	}
	err := stats.Add(r.Reg.Root, r.rec, time.Now())
	switch {
	case errors.Is(err, store.ErrNotRegular):
		// Planted: worth a line, since it stops every run's stats.
		r.Log.Warn("cannot record stats: %v", err)
	case err != nil:
		r.Log.Debug("cannot record stats: %v", err)
	}
}

// handOffMax is the most locks a run hands off (lockfile.HandOff) rather
// than leaving to its holder. Handing off saves the wait for the holder's
// start, which is the whole wait only while the check is shorter than it.
// Measured on 2 cores, medians of 21 interleaved warm no-op runs in three
// rounds: at 24 crates the drop-in added 4.5 ms to plain cargo handing off
// against 9.0 ms leaving it to the holder; at 100 the two were even (1.15
// and 1.13x); at 400 handing off was slower (1.13x against 1.10x, its own
// locking competing with the longer check for the cores).
const handOffMax = 64

// maxRounds bounds step 5's "something broke in between, go back to 4".
const maxRounds = 3

// Prepare is steps 2 to 5 of a run: plan, check, repair, pin. It returns the
// holder that has the planned set locked shared (nil when there is nothing
// to pin), to be kept through the exec. On an error no holder is left.
func (r *Run) Prepare() (pinned *lockfile.Holder, err error) {
	opened, err := r.openRegistry()
	if err != nil {
		return nil, err
	}
	if err := r.sharePackageCacheLock(opened); err != nil {
		return nil, err
	}
	if r.Cmd.Kind != Planned {
		return nil, nil
	}
	r.start = time.Now()
	gitLocks := r.prepareGit()
	// By the time Prepare returns, the holder pins the git sources too
	// (or the run has failed).
	defer r.gitPins.Release()
	if !opened {
		return r.pinGitOnly(gitLocks)
	}
	if bad := r.Reg.NotReal(); len(bad) > 0 {
		return nil, stage("registry", fmt.Errorf("%s is not a real directory (another uid may have replaced it with a symlink); nothing below the registry is followed", bad[0]))
	}
	// Another release's lock layout: our locks would not exclude its runs.
	if err := r.Reg.CheckFormat(); err != nil {
		return nil, err
	}
	lockPath, lockData, err := r.planSource()
	if err != nil {
		return nil, stage("plan", err)
	}
	if lockData == nil {
		return r.pinGitOnly(gitLocks)
	}
	holder := r.startHolder(lockData)
	defer func() {
		if h, err := holder.get(); pinned == nil && err == nil {
			h.Stop()
		}
	}()
	lockPaths, planErr := r.loadPlan(lockData, lockPath)
	if planErr != nil || len(lockPaths)+len(gitLocks) == 0 {
		if _, err := holder.get(); err != nil {
			return nil, err
		}
		return nil, stage("plan", planErr)
	}
	// Handing off needs the kernel's own flock (lockfile.LocalLocks); git
	// sources are pinned in this process and locked again later (recheckGit).
	r.handOff = len(gitLocks) == 0 && len(lockPaths) <= handOffMax && lockfile.LocalLocks(r.Reg.Root)
	lockPaths = append(lockPaths, gitLocks...)
	if err := r.pinHealthy(holder, lockPaths); err != nil {
		return nil, err
	}
	h, _ := holder.get() // started: pinHealthy returned no error
	if err := r.recheckGit(h, lockPaths); err != nil {
		return nil, err
	}
	r.refreshTarget(lockPath)
	// After pinning: gc removes nothing pinned, so what is fetched now
	// stays until the build is done.
	if err := r.fetchCold(); err != nil {
		return nil, err
	}
	return h, nil
}

// startHolder starts the lock holder while this run plans and checks: the
// fork and exec block only the goroutine that starts it (a millisecond on a
// quiet machine, measured 2 to 30 ms under load, when the check would have
// waited for it), and the holder's own start-up overlaps the planning too.
// Its pipes and socket exist at once, so locks can be handed to it
// (lockfile.HandOff) before it has started.
func (r *Run) startHolder(lockData []byte) *startingHolder {
	s := &startingHolder{started: make(chan struct{})}
	h, err := lockfile.NewHolder(r.Self, bytes.Count(lockData, []byte("[[package]]")))
	if err != nil {
		s.err = stage("holder", fmt.Errorf("cannot start the lock holder: %w", err))
		close(s.started)
		return s
	}
	h.Note(r.Reg.HoldersDir(), r.note)
	s.pre = h
	go func() {
		defer close(s.started)
		if err := h.Start(); err != nil {
			s.err = stage("holder", fmt.Errorf("cannot start the lock holder: %w", err))
			return
		}
		s.h = h
	}()
	return s
}

// startingHolder is the holder while it starts; get waits for the start
// and may be called from any goroutine, any number of times.
type startingHolder struct {
	started chan struct{}
	pre     *lockfile.Holder // before it has started: for HandOff only
	h       *lockfile.Holder
	err     error
}

func (s *startingHolder) get() (*lockfile.Holder, error) {
	<-s.started
	return s.h, s.err
}

// openRegistry is step 1: the registry held by descriptor before anything
// in it is opened, linked to or written (cargo's lock, stats, locks,
// records): from then on every path below it, in this process and the
// holder it starts (lockfile.Beneath), is resolved beneath that descriptor.
// A registry that is to be shared is made first; one that is not there and
// not shared is cargo's to create (opened: false).
func (r *Run) openRegistry() (opened bool, err error) {
	if r.Cfg.ShareLock == store.ShareAlways || r.Cfg.ShareLock == store.ShareAuto && store.RegistryShared(r.Cfg.CargoHome, r.Reg.Root) {
		os.MkdirAll(r.Reg.Root, 0o755)
	}
	if err := r.Reg.Open(); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, stage("registry", fmt.Errorf("cannot open the registry: %w", err))
	}
	return true, nil
}

// sharePackageCacheLock points this home's cargo package-cache lock into the
// registry when the registry is shared. The per-crate protection does not
// depend on it: a failure stops only a strict run, and is otherwise reported
// once, after Prepare. Root declining to share (ErrNotSafeForRoot) is
// reported under -v only: it is the layout's choice, and cargo's own lock
// then works as it does without the shim.
func (r *Run) sharePackageCacheLock(opened bool) error {
	// Not opened: not there and not shared; only the home's own links
	// (from an earlier version) are looked at.
	if r.Cfg.ShareLock != store.ShareNever && (opened || r.Cfg.ShareLock == store.ShareAuto) {
		shared, err := r.Reg.SharePackageCacheLock(r.Cfg.CargoHome, r.Cfg.ShareLock)
		switch {
		case errors.Is(err, store.ErrNotSafeForRoot):
			r.Log.Verbose("Unshared", fmt.Sprintf("cargo's package cache lock of this home: %v", err))
		case err != nil:
			err = fmt.Errorf("cannot share cargo's package cache lock, so cold starts are not deduplicated (CARGO_SHIM_SHARE_CARGO_LOCK=0 turns this off): %w", err)
			if r.Cfg.Strict {
				return err
			}
			r.shareErr = err
		}
		r.shared = shared
	}
	if !r.shared {
		// This home's cargo takes its own lock: that is the one to wait for.
		r.Reg.CargoLock = store.CargoLockFiles(r.Cfg.CargoHome)[0]
	}
	return nil
}

// loadPlan is step 2: the plan, and the lock paths that pin it.
func (r *Run) loadPlan(lockData []byte, lockPath string) ([]string, error) {
	p, err := r.Reg.LoadPlanFrom(lockData, lockPath, r.planFrom)
	if err != nil {
		return nil, fmt.Errorf("cannot read the planned crates: %w", err)
	}
	for _, e := range p.Skipped() {
		r.Log.Warn("%s: skipping package %s: not a name and version cargo accepts", lockPath, e)
	}
	r.rec.Planned = !p.Cached()
	lockPaths := r.Reg.LockPaths(p)
	r.plan = p
	r.Log.Debug("planned %d crates from %s (plan record: %v), %d locks (%s)", p.Crates(), lockPath, p.Cached(), len(lockPaths), time.Since(r.start))
	return lockPaths, nil
}

// pinHealthy is steps 3 to 5: pin, check, and while something is broken,
// unpin, repair and go round again (at most maxRounds times).
func (r *Run) pinHealthy(holder *startingHolder, lockPaths []string) error {
	for round := 0; ; round++ {
		broken, fresh, err := r.pinAndCheck(holder, lockPaths, round)
		if err != nil {
			return err
		}
		if len(broken) == 0 {
			if fresh && len(r.plan.Skipped()) == 0 {
				if err := r.Reg.RecordPlan(r.plan); err != nil {
					r.Log.Debug("cannot record the plan: %v", err)
				}
			}
			return nil
		}
		if round == maxRounds {
			r.Log.Warn("the registry kept changing while cargo-shim repaired it; %d crates left as they are (first: %s: %s)", len(broken), broken[0].Instance, broken[0].Describe())
			return nil
		}
		// flock cannot upgrade shared to exclusive: release everything,
		// repair one crate at a time, then pin again and re-check.
		h, _ := holder.get() // started: pinAndCheck returned no error
		if err := h.Release(); err != nil {
			return err
		}
		for _, f := range broken {
			if err := r.repairOne(f.Instance); err != nil {
				return err
			}
		}
		r.plan.Distrust()
	}
}

// pinAndCheck takes the shared locks and checks the plan, returning what is
// still broken once no download is in progress. Round 0 checks while the
// holder takes the locks: every change cargo-shim makes to a crate is one
// atomic rename under its exclusive lock, so what this check sees is either
// what the locks then pin, or a crate removed meanwhile, which cargo
// downloads or extracts as usual. Later rounds follow repairs and pin first.
func (r *Run) pinAndCheck(holder *startingHolder, lockPaths []string, round int) (broken []store.Finding, fresh bool, err error) {
	lw := newLockWait()
	locked := r.lockWhenStarted(holder, lockPaths, lw, round)
	if round > 0 {
		if err := r.locked(locked, lw); err != nil {
			return nil, false, err
		}
	}
	findings, fresh := r.checkPlan(r.plan)
	r.Log.Debug("round %d: checked, record trusted: %v (%s)", round, !fresh, time.Since(r.start))
	if round == 0 {
		if err := r.locked(locked, lw); err != nil {
			return nil, false, err
		}
		r.Log.Debug("locked (%s)", time.Since(r.start))
	}
	broken = brokenOf(findings)
	if len(broken) == 0 {
		return nil, fresh, nil
	}
	// Another runner's cargo may be downloading or unpacking these very
	// crates: look again once it is done.
	err = r.quiesce(func() {
		again := make([]store.Instance, len(broken))
		for n, f := range broken {
			again[n] = f.Instance
		}
		broken = brokenOf(r.checkAll(again))
	})
	return broken, fresh, stage("lock", err)
}

// lockWhenStarted asks the holder for the locks as soon as it has started,
// in the background; receive the outcome with locked. Round 0 of a run
// that may hand its locks off takes them itself meanwhile instead.
func (r *Run) lockWhenStarted(holder *startingHolder, lockPaths []string, lw *lockWait, round int) <-chan lockOutcome {
	done := make(chan lockOutcome, 1)
	go func() {
		var err error
		if round == 0 && r.handOff && holder.pre != nil {
			err = holder.pre.HandOff(lockPaths, r.Cfg.LockTimeout, r.waitingFor(lw))
		}
		h, serr := holder.get()
		switch {
		case serr != nil:
			done <- lockOutcome{start: serr}
		case round == 0 && r.handOff:
			done <- lockOutcome{lock: err}
		default:
			done <- lockOutcome{lock: h.Lock(lockPaths, r.Cfg.LockTimeout, r.waitingFor(lw))}
		}
	}()
	return done
}

// lockOutcome: the holder could not start, or the locks were taken or not.
type lockOutcome struct{ start, lock error }

// locked waits for lockWhenStarted's outcome and counts the wait.
func (r *Run) locked(c <-chan lockOutcome, lw *lockWait) error {
	o := <-c
	if o.start != nil {
		return o.start
	}
	r.endWait(lw)
	if o.lock != nil {
		return r.lockError(o.lock)
	}
	return nil
}

// checkOptions are this run's: its level, and a debug line for a state
// that could not be recorded.
func (r *Run) checkOptions() store.CheckOptions {
	o := store.CheckOptions{Level: r.Cfg.Verify, Offline: r.Offline, RecordFailed: func(i store.Instance, err error) {
		r.Log.Debug("cannot record state of %s: %v", i, err)
	}}
	if r.Group.Shared {
		o.Verified = func(i store.Instance) { groupshare.FixDirs(r.Reg.Extraction(i), r.Group.Gid) }
	}
	return o
}

// checkPlan is step 3: every planned instance, reported.
func (r *Run) checkPlan(p *store.Plan) (findings []store.Finding, fresh bool) {
	findings, fresh = r.Reg.CheckPlan(p, r.checkOptions())
	r.reportFindings(findings)
	return findings, fresh
}

// checkAll checks instances in full, reported.
func (r *Run) checkAll(instances []store.Instance) []store.Finding {
	findings := r.Reg.CheckAll(instances, r.checkOptions())
	r.reportFindings(findings)
	return findings
}

func brokenOf(fs []store.Finding) []store.Finding {
	var out []store.Finding
	for _, f := range fs {
		if f.Verdict == store.Broken {
			out = append(out, f)
		}
	}
	return out
}

// crateOfLock names the crate a lock path belongs to, for messages.
func (r *Run) crateOfLock(path string) string { return r.Reg.CrateOfLock(r.plan, path) }

// waitingFor is the holder's wait callback for one lock operation.
func (r *Run) waitingFor(w *lockWait) func(path string) {
	return func(path string) {
		w.waited.Store(true)
		i, _ := r.Reg.InstanceOfLock(path)
		w.on.Store(&waitOn{what: "crate", why: "held by another runner", i: i})
		if path == r.Reg.ColdLock() {
			w.on.Store(&waitOn{what: "gc", why: "cargo-shim gc was running"})
			r.Log.Status("Blocking", "waiting for cargo-shim gc to finish (this build downloads crates)")
			return
		}
		name := r.crateOfLock(path)
		r.Log.Status("Blocking", fmt.Sprintf("waiting for lock on crate %s (%s)", name, r.heldBy("held by another runner")))
	}
}

// lockTimeout ends a run's repairs: waiting on for the next crate would run
// past the timeout.
type lockTimeout string

func (e lockTimeout) Error() string { return string(e) }

func (r *Run) lockError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		var pe *os.PathError
		name := ""
		if errors.As(err, &pe) {
			name = r.crateOfLock(pe.Path)
		}
		return lockTimeout(fmt.Sprintf("timed out after %s waiting for the lock on crate %s (CARGO_SHIM_LOCK_TIMEOUT)", r.Cfg.LockTimeout, name))
	}
	return stage("lock", fmt.Errorf("cannot lock the planned crates: %w", err))
}

func (r *Run) reportFindings(out []store.Finding) {
	for _, f := range out {
		if f.Mismatch != "" && f.Fresh() {
			r.Log.Warn("%s: sha256 of %s is %s, Cargo.lock says %s; kept (it may come from another registry)", f.Crate, r.Reg.Tarball(f.Instance), f.Mismatch, f.Checksum)
		}
		if f.Unverified != "" && f.Fresh() {
			r.Log.Warn("%s: %s: %s", f.Crate, f.Path, f.Unverified)
		}
		if f.TarballUnsafe != nil && f.Fresh() {
			r.Log.Warn("%s: %v", f.Crate, f.TarballUnsafe)
		}
		if f.TarballMissing && f.ExtractionOK && r.Offline {
			r.Log.Warn("%s is extracted but its tarball %s is missing; cargo --offline needs it: run once online, or copy the .crate there", f.Crate, r.Reg.Tarball(f.Instance))
		}
	}
}

// repairOne is step 4 for one crate. A nested shim never blocks: the build
// that runs it may hold the very lock.
func (r *Run) repairOne(i store.Instance) error {
	ctx, cancel := r.lockContext()
	defer cancel()
	lw := newLockWait()
	act, _, err := r.Reg.RepairCrate(ctx, i, store.RepairOptions{NoWait: r.Nested, Offline: r.Offline, Waiting: func(what store.WaitFor) {
		lw.waited.Store(true)
		lw.on.Store(&waitOn{what: waitWord(what), why: "before repairing", i: i})
		if what == store.WaitCrate {
			r.Log.Status("Blocking", fmt.Sprintf("waiting for lock on crate %s (%s)", i.Crate, r.heldBy("in use by another runner")))
		} else {
			r.Log.Status("Blocking", "waiting for file lock on package cache ("+r.heldBy("another runner is downloading")+")")
		}
	}})
	r.endWait(lw)
	switch {
	case errors.Is(err, store.ErrInUse):
		r.Log.Debug("%s is in use by the build that runs us; not repairing it", i)
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return r.lockError(err)
	case err != nil:
		return stage("repair", fmt.Errorf("repairing %s: %w", i, err))
	}
	if act.Unjournaled != nil {
		r.Log.Warn("repaired %s but could not journal it, so target dirs that compiled it are not rebuilt (cargo clean -p %s does): %v", i.Crate, i.Name, act.Unjournaled)
	}
	switch {
	case act.Left:
		r.Log.Warn("cannot repair %s", act.Detail)
		r.rec.Act("left")
	case act.Verb != "":
		r.Log.Status(act.Verb, act.Detail)
		r.rec.Act(act.Kind)
	}
	if _, err := r.Reg.EmptyTrash(time.Minute); err != nil {
		r.Log.Debug("trash: %v", err)
	}
	return nil
}

// quiesce is Registry.Quiesce with this run's timeout and message.
func (r *Run) quiesce(fn func()) error {
	ctx, cancel := r.lockContext()
	defer cancel()
	lw := newLockWait()
	defer r.endWait(lw)
	return r.Reg.Quiesce(ctx, func() {
		lw.waited.Store(true)
		lw.on.Store(&waitOn{what: "package-cache", why: "another runner was downloading"})
		r.Log.Status("Blocking", "waiting for file lock on package cache ("+r.heldBy("another runner is downloading")+")")
	}, fn)
}

func (r *Run) lockContext() (context.Context, context.CancelFunc) {
	if r.Cfg.LockTimeout == 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), r.Cfg.LockTimeout)
}

// checkRegistry is the run without a Cargo.lock: every extraction in the
// registry is checked and repaired, none is pinned (the plan is not known yet).
func (r *Run) checkRegistry() error {
	findings := r.checkAll(r.Reg.AllInstances())
	sort.Slice(findings, func(a, b int) bool {
		return r.Reg.LockPath(findings[a].Instance) < r.Reg.LockPath(findings[b].Instance)
	})
	// One crate that cannot be repaired (its tarball, its directory) is
	// that crate's warning, not the end of the others' repairs.
	for _, f := range findings {
		if f.Verdict != store.Broken {
			continue
		}
		err := r.repairOne(f.Instance)
		if errors.As(err, new(lockTimeout)) {
			return err
		}
		if err != nil {
			r.Log.Warn("%v; left as it is", err)
		}
	}
	return nil
}
