package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/shim/duration"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// Config is the drop-in's settings, all from CARGO_SHIM_* variables: a
// drop-in cannot take flags of its own.
type Config struct {
	RealCargo   string          // CARGO_SHIM_REAL_CARGO
	CargoHome   string          // CARGO_HOME, else ~/.cargo
	Registry    string          // CARGO_SHIM_REGISTRY, else $CARGO_HOME/registry
	RegistrySet bool            // CARGO_SHIM_REGISTRY was set
	LockTimeout time.Duration   // CARGO_SHIM_LOCK_TIMEOUT, 0 = forever
	Strict      bool            // CARGO_SHIM_STRICT=1
	Disable     bool            // CARGO_SHIM_DISABLE=1
	Log         LogMode         // CARGO_SHIM_LOG
	Verify      store.Level     // CARGO_SHIM_VERIFY
	ShareLock   store.ShareMode // CARGO_SHIM_SHARE_CARGO_LOCK: auto (default), 1 always, 0 never
	// EventLog is CARGO_SHIM_EVENT_LOG: "" for the registry's per-uid
	// logs, "off" for none, else the file to log to.
	EventLog string
	// EventLockWait is CARGO_SHIM_EVENT_LOCK_WAIT: a lock wait at least
	// this long is an event (default 1s).
	EventLockWait time.Duration

	// What the run reads of the environment besides its own settings.
	Path       string // PATH, to find the real cargo
	Execed     string // CARGO_SHIM_EXECED: the cargo another shim exec'd
	Nested     bool   // CARGO_SHIM_ACTIVE: under another shim's cargo
	Probe      bool   // CARGO_SHIM_PROBE=1: describe the shim, run nothing
	NetOffline bool   // CARGO_NET_OFFLINE
	// Where cargo builds: CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR and
	// CARGO_BUILD_BUILD_DIR (a repair must reach the fingerprints there).
	TargetDir, BuildTargetDir, BuildDir string
}

// Getenv looks up one variable; tests pass their own.
type Getenv func(string) string

// LookupIn reads variables from an environ snapshot (os.Environ()); the
// first of duplicate entries wins, as with os.Getenv and getenv(3).
func LookupIn(environ []string) Getenv {
	return func(key string) string {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, key); ok && strings.HasPrefix(v, "=") {
				return v[1:]
			}
		}
		return ""
	}
}

// LoadConfig reads the settings. Bad values are errors naming the variable;
// the caller decides whether that is fatal (strict) or a warning.
func LoadConfig(getenv Getenv, cwd string) (Config, error) {
	c := Config{LockTimeout: 10 * time.Minute, EventLockWait: time.Second}
	var errs []string
	c.RealCargo = getenv("CARGO_SHIM_REAL_CARGO")
	c.Strict = isTrue(getenv("CARGO_SHIM_STRICT"))
	c.Disable = isTrue(getenv("CARGO_SHIM_DISABLE"))
	c.Path = getenv("PATH")
	c.Execed = getenv(ExecedEnv)
	c.Nested = getenv(ActiveEnv) != ""
	c.Probe = getenv(ProbeEnv) == "1"
	c.NetOffline = isTrue(getenv("CARGO_NET_OFFLINE"))
	c.TargetDir = getenv("CARGO_TARGET_DIR")
	c.BuildTargetDir = getenv("CARGO_BUILD_TARGET_DIR")
	c.BuildDir = getenv("CARGO_BUILD_BUILD_DIR")
	switch v := getenv("CARGO_SHIM_SHARE_CARGO_LOCK"); {
	case v == "" || strings.EqualFold(v, "auto"):
	case isTrue(v):
		c.ShareLock = store.ShareAlways
	default:
		c.ShareLock = store.ShareNever
	}
	home := getenv("CARGO_HOME")
	if home == "" {
		h := getenv("HOME")
		if h == "" {
			h, _ = os.UserHomeDir()
		}
		home = filepath.Join(h, ".cargo")
	} else if !filepath.IsAbs(home) {
		home = filepath.Join(cwd, home)
	}
	c.CargoHome = home
	c.Registry = getenv("CARGO_SHIM_REGISTRY")
	c.RegistrySet = c.Registry != ""
	if c.Registry == "" {
		c.Registry = filepath.Join(home, "registry")
	} else if !filepath.IsAbs(c.Registry) {
		c.Registry = filepath.Join(cwd, c.Registry)
	}
	if v := getenv("CARGO_SHIM_LOCK_TIMEOUT"); v != "" {
		d, err := duration.Parse(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("CARGO_SHIM_LOCK_TIMEOUT: %v", err))
		} else {
			c.LockTimeout = d
		}
	}
	if v := getenv("CARGO_SHIM_EVENT_LOCK_WAIT"); v != "" {
		d, err := duration.Parse(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("CARGO_SHIM_EVENT_LOCK_WAIT: %v", err))
		} else {
			c.EventLockWait = d
		}
	}
	switch v := getenv("CARGO_SHIM_EVENT_LOG"); {
	case v == "" || strings.EqualFold(v, "off") || filepath.IsAbs(v):
		c.EventLog = v
	default:
		c.EventLog = filepath.Join(cwd, v)
	}
	var err error
	if c.Log, err = ParseLogMode(getenv("CARGO_SHIM_LOG")); err != nil {
		errs = append(errs, "CARGO_SHIM_LOG: "+err.Error())
	}
	if c.Verify, err = store.ParseLevel(getenv("CARGO_SHIM_VERIFY")); err != nil {
		errs = append(errs, "CARGO_SHIM_VERIFY: "+err.Error())
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}

func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// RegistryMismatch says how CARGO_SHIM_REGISTRY contradicts the filesystem:
// cargo reads and writes $CARGO_HOME/registry whatever the shim is told, so
// a shim protecting another directory protects nothing, and would point
// this home's download lock at that other registry. "" when the variable is
// unset or names the directory $CARGO_HOME/registry resolves to (through a
// symlink or a bind mount: same device and inode).
func (c Config) RegistryMismatch() string {
	if !c.RegistrySet {
		return ""
	}
	home := filepath.Join(c.CargoHome, "registry")
	var h, s unix.Stat_t
	errH, errS := unix.Stat(home, &h), unix.Stat(c.Registry, &s)
	if errH == nil && errS == nil && h.Dev == s.Dev && h.Ino == s.Ino {
		return ""
	}
	where := home
	switch r, err := filepath.EvalSymlinks(home); {
	case errH != nil:
		where += " (missing: cargo creates it)"
	case err == nil && r != home:
		where += " (" + r + ")"
	}
	return fmt.Sprintf("CARGO_SHIM_REGISTRY is %s, but cargo uses %s, another directory", c.Registry, where)
}

// RegistryFix is what to do about a mismatch.
const RegistryFix = "unset CARGO_SHIM_REGISTRY, or mount or link the shared registry at $CARGO_HOME/registry"
