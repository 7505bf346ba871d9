package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/duration"
	"github.com/cargo-shim/cargo-shim/shim/store"
)

// Config is the drop-in's settings, all from CARGO_SHIM_* variables: a
// drop-in cannot take flags of its own.
type Config struct {
	RealCargo   string        // CARGO_SHIM_REAL_CARGO
	CargoHome   string        // CARGO_HOME, else ~/.cargo
	Registry    string        // CARGO_SHIM_REGISTRY, else $CARGO_HOME/registry
	LockTimeout time.Duration // CARGO_SHIM_LOCK_TIMEOUT, 0 = forever
	Strict      bool          // CARGO_SHIM_STRICT=1
	Disable     bool          // CARGO_SHIM_DISABLE=1
	Log         LogMode       // CARGO_SHIM_LOG
	Verify      store.Level   // CARGO_SHIM_VERIFY
	ShareLock   bool          // CARGO_SHIM_SHARE_CARGO_LOCK (default on)
}

// Getenv looks up one variable; tests pass their own.
type Getenv func(string) string

// LoadConfig reads the settings. Bad values are errors naming the variable;
// the caller decides whether that is fatal (strict) or a warning.
func LoadConfig(getenv Getenv, cwd string) (Config, error) {
	c := Config{LockTimeout: 10 * time.Minute, ShareLock: true}
	var errs []string
	c.RealCargo = getenv("CARGO_SHIM_REAL_CARGO")
	c.Strict = isTrue(getenv("CARGO_SHIM_STRICT"))
	c.Disable = isTrue(getenv("CARGO_SHIM_DISABLE"))
	if v := getenv("CARGO_SHIM_SHARE_CARGO_LOCK"); v != "" {
		c.ShareLock = isTrue(v)
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
