package shim

import (
	"testing"
	"time"
)

// CARGO_SHIM_LOCK_TIMEOUT is read by the one duration parser: days and
// weeks too, and a bad value names the variable.
func TestLockTimeoutDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "1d": 24 * time.Hour, "2w": 14 * 24 * time.Hour, "0": 0} {
		c, err := LoadConfig(env(map[string]string{"CARGO_SHIM_LOCK_TIMEOUT": in, "HOME": "/h"}), "/")
		if err != nil || c.LockTimeout != want {
			t.Errorf("CARGO_SHIM_LOCK_TIMEOUT=%s: %v, %v; want %v", in, c.LockTimeout, err, want)
		}
	}
	c, err := LoadConfig(env(map[string]string{"CARGO_SHIM_LOCK_TIMEOUT": "soon", "HOME": "/h"}), "/")
	if err == nil || c.LockTimeout != 10*time.Minute {
		t.Errorf("a bad timeout: %v, %v", c.LockTimeout, err)
	}
}
