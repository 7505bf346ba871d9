package shim

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func env(kv map[string]string) Getenv { return func(k string) string { return kv[k] } }

func TestLoggerColorFollowsCargo(t *testing.T) {
	// stderr of a test is not a terminal: auto means no color.
	cases := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"always", map[string]string{"CARGO_TERM_COLOR": "always"}, true},
		{"always-beats-NO_COLOR", map[string]string{"CARGO_TERM_COLOR": "always", "NO_COLOR": "1"}, true},
		{"never", map[string]string{"CARGO_TERM_COLOR": "never"}, false},
		{"auto-not-a-terminal", map[string]string{}, false},
		{"auto-NO_COLOR", map[string]string{"NO_COLOR": "1"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewLogger(os.Stderr, LogInfo, env(tc.env)).Color; got != tc.want {
				t.Fatalf("color %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoggerCargoStyle(t *testing.T) {
	var b bytes.Buffer
	l := &Logger{W: &b, Mode: LogInfo}
	l.Status("Repairing", "fnv v1.0.7 (src/lib.rs missing)")
	l.Warn("x %d", 1)
	l.Debug("hidden")
	want := "   Repairing fnv v1.0.7 (src/lib.rs missing)\nwarning: cargo-shim: x 1\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	l.Color = true
	l.Status("Repairing", "fnv")
	if !strings.HasPrefix(b.String(), "\x1b[1;32m   Repairing\x1b[0m fnv") {
		t.Fatalf("colored: %q", b.String())
	}
	b.Reset()
	(&Logger{W: &b, Mode: LogQuiet}).Status("Repairing", "fnv")
	if b.Len() != 0 {
		t.Fatalf("quiet printed %q", b.String())
	}
	b.Reset()
	(&Logger{W: &b, Mode: LogJSON}).Status("Repairing", "fnv v1.0.7")
	var m map[string]string
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["verb"] != "Repairing" || m["msg"] != "fnv v1.0.7" || m["level"] != "info" {
		t.Fatalf("json: %q %v", b.String(), err)
	}
}
