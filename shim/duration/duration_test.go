package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := map[string]time.Duration{
		"0": 0, "0s": 0, "90s": 90 * time.Second, "10m": 10 * time.Minute, "72h": 72 * time.Hour,
		"30d": 30 * Day, "2w": 2 * Week, "1w3d12h": Week + 3*Day + 12*time.Hour, "1.5d": 36 * time.Hour,
		" 1d ": Day,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "30", "-1d", "-5m", "3x", "1d-2h", "w2", "1dd"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, Day, 30 * Day, 2 * Week, Week + 3*Day + 12*time.Hour, 10 * time.Minute} {
		s := Format(d)
		back, err := Parse(s)
		if err != nil || back != d {
			t.Errorf("Format(%v) = %q, parses back as %v, %v", d, s, back, err)
		}
	}
	if s := Format(30 * Day); s != "30d" {
		t.Errorf("Format(30d) = %q", s)
	}
	if s := Format(14 * Day); s != "2w" {
		t.Errorf("Format(2w) = %q", s)
	}
}
