package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/integration/loopback"
)

// The user-facing rows: what a user waits for is plain cargo's warm no-op
// plus the shim's work before the exec, so they are measured from outside,
// real cargo through the rustup proxy against the same command with the
// drop-in first on PATH. Beside them: the shim's own cost over /bin/true
// against a floor measured as a process (not in-process: a Go program's
// start, its descriptor table and its exec are part of what any drop-in
// pays), and the syscalls a run makes per crate.

// userfacingSizes are the workspace sizes of the plain-vs-shim rows.
var userfacingSizes = []int{24, 100, 400}

// Markers around the section, so that `-userfacing only` can replace it in
// a BENCHMARKS.md written by a full run.
const (
	ufBegin = "<!-- userfacing: begin (written by bench -userfacing) -->"
	ufEnd   = "<!-- userfacing: end -->"
)

type checkRow struct {
	crates             int
	plain, viaSh       time.Duration
	plainMin, viaShMin time.Duration // the fastest run: the least disturbed by load
	goExec, goTwo      time.Duration // the wrappers of wrappers.go, which do no work
}

type straceRow struct {
	what          string
	crates, total int
	top           string
}

type userFacing struct {
	runs                       int
	binDir, shimBin, tmp       string
	loadBefore, loadAfter      string
	checks                     []checkRow
	trueMed, shim400, floor400 time.Duration
	floorUnsized               time.Duration // the floor process without a sized table
	floorDirs                  int
	strace                     []straceRow
	straceSkip                 string
	trueSyscalls               int
}

// benchUserFacing measures every user-facing row in a scratch directory
// under tmp.
func benchUserFacing(tmp, binDir string, runs int) (*userFacing, error) {
	u := &userFacing{runs: runs, binDir: binDir, shimBin: filepath.Join(binDir, "cargo"), tmp: filepath.Join(tmp, "userfacing"), loadBefore: loadAvg()}
	if err := os.MkdirAll(u.tmp, 0o755); err != nil {
		return nil, err
	}
	if err := u.measureChecks(); err != nil {
		return nil, err
	}
	if err := u.measureFloor(); err != nil {
		return nil, err
	}
	u.loadAfter = loadAvg()
	return u, nil
}

// trivialCrates are n registry crates of one function each, no_std: the
// smallest crates cargo still fingerprints, so the no-op is cargo's own
// bookkeeping per crate.
func trivialCrates(n int) []loopback.CrateSpec {
	var out []loopback.CrateSpec
	for k := 0; k < n; k++ {
		out = append(out, loopback.CrateSpec{Name: fmt.Sprintf("uf-crate-%03d", k), Version: "1.0.0", Files: map[string]string{
			"src/lib.rs": fmt.Sprintf("#![no_std]\npub fn v() -> u32 { %d }\n", k),
		}})
	}
	return out
}

// measureChecks builds one workspace per size once (largest first: the
// smaller ones then reuse its checked crates through the shared target
// directory), then interleaves plain and shim no-op checks.
func (u *userFacing) measureChecks() error {
	reg, err := loopback.NewRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()
	all := trivialCrates(userfacingSizes[len(userfacingSizes)-1])
	for _, c := range all {
		reg.Publish(c)
	}
	home := filepath.Join(u.tmp, "home")
	if err := os.MkdirAll(filepath.Join(home, "registry"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(reg.CargoConfig()), 0o644); err != nil {
		return err
	}
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		return fmt.Errorf("no cargo on PATH: %w", err)
	}
	plainEnv, shimEnv := loopback.CargoEnv(home, ""), loopback.CargoEnv(home, u.binDir)
	works := map[int]string{}
	for i := len(userfacingSizes) - 1; i >= 0; i-- {
		n := userfacingSizes[i]
		works[n] = filepath.Join(u.tmp, fmt.Sprintf("ws%d", n))
		fmt.Printf("user-facing: building the %d-crate workspace once (cargo check)...\n", n)
		if err := ufWorkspace(works[n], n, all[:n]); err != nil {
			return err
		}
		if err := warmNoop(cargo, u.shimBin, works[n], plainEnv, shimEnv); err != nil {
			return err
		}
	}
	goExec, err := buildGoProgram(u.tmp, "goexec", goExecSrc)
	if err != nil {
		return err
	}
	goTwo, err := buildGoProgram(u.tmp, "gotwo", goTwoSrc)
	if err != nil {
		return err
	}
	wrapEnv := append(slices.Clone(plainEnv), wrapperEnv+"="+cargo)
	bins := []string{cargo, u.shimBin, goExec, goTwo}
	envs := [][]string{plainEnv, shimEnv, wrapEnv, wrapEnv}
	fmt.Printf("user-facing: %d interleaved runs of each no-op check...\n", u.runs)
	samples := map[int]*[4][]time.Duration{}
	for _, n := range userfacingSizes {
		samples[n] = &[4][]time.Duration{}
	}
	for r := 0; r < u.runs; r++ {
		for _, n := range userfacingSizes {
			// Each round starts with the next command: whatever the order
			// favours cancels out.
			for i := range bins {
				k := (i + r) % len(bins)
				d, _, err := timed(bins[k], []string{"check"}, works[n], envs[k])
				if err != nil {
					return err
				}
				samples[n][k] = append(samples[n][k], d)
			}
		}
	}
	for _, n := range userfacingSizes {
		s := samples[n]
		u.checks = append(u.checks, checkRow{crates: n, plain: median(s[0]), viaSh: median(s[1]), plainMin: slices.Min(s[0]), viaShMin: slices.Min(s[1]), goExec: median(s[2]), goTwo: median(s[3])})
	}
	return nil
}

// ufWorkspace writes a package depending on crates; each size has its own
// package name so that the shared target directory keeps them apart.
func ufWorkspace(dir string, n int, crates []loopback.CrateSpec) error {
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = \"uf-app-%d\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n", n)
	for _, c := range crates {
		fmt.Fprintf(&b, "%s = \"=%s\"\n", c.Name, c.Version)
	}
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "src", "main.rs"), []byte("fn main() {}\n"), 0o644)
}

// warmNoop checks the workspace with plain cargo, then through the shim
// (its first run records state), and fails unless a further run through
// the shim is a no-op: the rows must time cargo doing nothing.
func warmNoop(cargo, shimBin, work string, plainEnv, shimEnv []string) error {
	if _, _, err := timed(cargo, []string{"check"}, work, plainEnv); err != nil {
		return err
	}
	if _, _, err := timed(shimBin, []string{"check"}, work, shimEnv); err != nil {
		return err
	}
	cmd := exec.Command(shimBin, "check")
	cmd.Dir, cmd.Env = work, shimEnv
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Checking")) || bytes.Contains(out, []byte("Compiling")) {
		return fmt.Errorf("cargo check in %s through the shim is not a warm no-op (%v): %s", work, err, out)
	}
	return nil
}

// protected fails unless a run of the drop-in in work does the shim's work
// (a run it warns ran cargo without its protection would time nothing).
func protected(shimBin, work string, env []string) error {
	cmd := exec.Command(shimBin, "build")
	cmd.Dir, cmd.Env = work, env
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("without the shim's protection")) {
		return fmt.Errorf("the drop-in in %s does not protect the run (%v): %s", work, err, out)
	}
	return nil
}

// floorSrc is the floor as a process: what a warm run of this design must
// do and nothing else. It reads its list ("d <dir>" to lstat, "l <file>" to
// open and share-lock), keeps every lock's descriptor, and execs /bin/true.
// It is started with its descriptor table already sized for the locks
// (timedPadded), as the drop-in starts its holder.
const floorSrc = `package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 2 {
		pad, _ := strconv.Atoi(os.Args[2])
		syscall.Close(pad) // only there to size the descriptor table
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		os.Exit(2)
	}
	var st syscall.Stat_t
	var fds []int
	for _, l := range strings.Split(string(data), "\n") {
		if len(l) < 3 {
			continue
		}
		if l[0] == 'd' {
			if syscall.Lstat(l[2:], &st) != nil {
				os.Exit(3)
			}
			continue
		}
		fd, err := syscall.Open(l[2:], syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil || syscall.Flock(fd, syscall.LOCK_SH) != nil {
			os.Exit(4)
		}
		fds = append(fds, fd)
	}
	syscall.Exec("/bin/true", []string{"true"}, os.Environ())
}
`

// floorList writes the floor program's list for crates of the generated
// registry under root: every directory of each planned extraction, and one
// lock file per crate (made here, outside the registry).
func floorList(root string, crates []crateInfo) (list string, dirs int, err error) {
	var b strings.Builder
	lockDir := filepath.Join(root, "floor-locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", 0, err
	}
	for _, c := range crates {
		filepath.WalkDir(filepath.Join(root, "registry", "src", regdir, c.name+"-"+c.version), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				fmt.Fprintf(&b, "d %s\n", p)
				dirs++
			}
			return nil
		})
		lock := filepath.Join(lockDir, c.name)
		if err := os.WriteFile(lock, nil, 0o644); err != nil {
			return "", 0, err
		}
		fmt.Fprintf(&b, "l %s\n", lock)
	}
	list = filepath.Join(root, fmt.Sprintf("floor-%d.list", len(crates)))
	return list, dirs, os.WriteFile(list, []byte(b.String()), 0o644)
}

// measureFloor: 400 planned crates of the generated (real-shaped) registry,
// /bin/true as cargo, interleaved with /bin/true and the floor process;
// then one strace of each at 24 and 400 crates.
func (u *userFacing) measureFloor() error {
	floorBin, err := buildGoProgram(u.tmp, "floorproc", floorSrc)
	if err != nil {
		return err
	}
	fmt.Println("user-facing: generating a 400-crate registry for the floor rows...")
	root := filepath.Join(u.tmp, "r400")
	crates, err := genRegistry(root, 400)
	if err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(root, "home"), 0o755)
	// The home's registry is the shared one (as in prepare): a
	// CARGO_SHIM_REGISTRY that is not what $CARGO_HOME/registry names makes
	// the drop-in run cargo unprotected, and the rows would time that.
	os.Symlink(filepath.Join(root, "registry"), filepath.Join(root, "home", "registry"))
	scen, lists := map[int]*scenario{}, map[int]string{}
	for _, n := range []int{24, 400} {
		scen[n] = &scenario{root: root, work: filepath.Join(u.tmp, fmt.Sprintf("floor-ws%d", n)), crates: n}
		if err := workspace(scen[n].work, crates[:n]); err != nil {
			return err
		}
		if _, _, err := timed(u.shimBin, []string{"build"}, scen[n].work, scen[n].env(u.binDir)); err != nil {
			return err
		}
		if err := protected(u.shimBin, scen[n].work, scen[n].env(u.binDir)); err != nil {
			return err
		}
		if lists[n], u.floorDirs, err = floorList(root, crates[:n]); err != nil {
			return err
		}
	}
	var trueRuns, shimRuns, floorRuns, unsizedRuns []time.Duration
	for r := 0; r < u.runs; r++ {
		for _, m := range []struct {
			bin  string
			args []string
			dir  string
			env  []string
			into *[]time.Duration
			pad  int
		}{{"/bin/true", nil, u.tmp, os.Environ(), &trueRuns, 0}, {u.shimBin, []string{"build"}, scen[400].work, scen[400].env(u.binDir), &shimRuns, 0}, {floorBin, []string{lists[400], strconv.Itoa(3 + 400 + 32)}, u.tmp, os.Environ(), &floorRuns, 400 + 32}, {floorBin, []string{lists[400]}, u.tmp, os.Environ(), &unsizedRuns, 0}} {
			d, _, err := timedPadded(m.bin, m.args, m.dir, m.env, m.pad)
			if err != nil {
				return err
			}
			*m.into = append(*m.into, d)
		}
	}
	u.trueMed, u.shim400, u.floor400, u.floorUnsized = median(trueRuns), median(shimRuns), median(floorRuns), median(unsizedRuns)
	return u.measureStrace(floorBin, scen, lists)
}

// measureStrace counts the syscalls of one run of the drop-in and of the
// floor process at 24 and 400 crates, following every process (the holder
// and the exec'd /bin/true included), and of /bin/true alone.
func (u *userFacing) measureStrace(floorBin string, scen map[int]*scenario, lists map[int]string) error {
	if _, err := exec.LookPath("strace"); err != nil {
		u.straceSkip = "strace is not installed on this machine"
		return nil
	}
	var err error
	if _, u.trueSyscalls, _, err = straceCount("/bin/true", nil, u.tmp, os.Environ(), 0); err != nil {
		return err
	}
	for _, n := range []int{24, 400} {
		for _, m := range []struct {
			what, bin string
			args      []string
			dir       string
			env       []string
			pad       int
		}{{"drop-in", u.shimBin, []string{"build"}, scen[n].work, scen[n].env(u.binDir), 0}, {"floor process", floorBin, []string{lists[n], strconv.Itoa(3 + n + 32)}, u.tmp, os.Environ(), n + 32}} {
			_, total, top, err := straceCount(m.bin, m.args, m.dir, m.env, m.pad)
			if err != nil {
				return err
			}
			u.strace = append(u.strace, straceRow{what: m.what, crates: n, total: total, top: top})
		}
	}
	return nil
}

// straceCount runs bin under `strace -f -c` and returns the summary's
// total and its five most frequent syscalls.
func straceCount(bin string, args []string, dir string, env []string, pad int) (out string, total int, top string, err error) {
	f := filepath.Join(os.TempDir(), fmt.Sprintf("bench-strace-%d", time.Now().UnixNano()))
	defer os.Remove(f)
	if _, _, err := timedPadded("strace", append([]string{"-f", "-c", "-S", "calls", "-o", f, bin}, args...), dir, env, pad); err != nil {
		return "", 0, "", err
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return "", 0, "", err
	}
	type sc struct {
		name  string
		calls int
	}
	var rows []sc
	for _, l := range strings.Split(string(data), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 5 {
			continue
		}
		calls, err := strconv.Atoi(fs[3])
		if err != nil {
			continue
		}
		if fs[len(fs)-1] == "total" {
			total = calls
			continue
		}
		rows = append(rows, sc{fs[len(fs)-1], calls})
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].calls > rows[b].calls })
	var parts []string
	for k := 0; k < len(rows) && k < 5; k++ {
		parts = append(parts, fmt.Sprintf("%s %d", rows[k].name, rows[k].calls))
	}
	return string(data), total, strings.Join(parts, ", "), nil
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	fs := strings.Fields(string(data))
	if err != nil || len(fs) < 3 {
		return "unknown"
	}
	return strings.Join(fs[:3], " ")
}
