// Package duration reads the durations users type: Go's units plus days
// and weeks ("30d", "2w", "1w3d12h"), as cargo's gc settings and cron-style
// retention policies are written. Every duration the shim reads goes
// through Parse, flags and environment variables alike.
package duration

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

// Parse reads a non-negative duration. "0" is zero; a number needs a unit.
func Parse(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "0" {
		return 0, nil
	}
	if in == "" || strings.HasPrefix(in, "-") {
		return 0, syntaxError(s)
	}
	var total time.Duration
	for rest := in; rest != ""; {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, syntaxError(s)
		}
		k := strings.IndexAny(rest, "dw")
		if k < 0 {
			d, err := time.ParseDuration(rest)
			if err != nil {
				return 0, syntaxError(s)
			}
			return total + d, nil
		}
		n, err := strconv.ParseFloat(rest[:k], 64)
		if err != nil || n < 0 || rest[:k] == "" {
			return 0, syntaxError(s)
		}
		unit := Day
		if rest[k] == 'w' {
			unit = Week
		}
		total += time.Duration(n * float64(unit))
		rest = rest[k+1:]
	}
	return total, nil
}

func syntaxError(s string) error {
	return fmt.Errorf("%q is not a duration such as 90s, 10m, 72h, 30d or 2w", s)
}

// Format writes d the way Parse reads it, whole weeks and days first.
func Format(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d%Week == 0 {
		return fmt.Sprintf("%dw", d/Week)
	}
	if n := d / Day; n > 0 {
		fmt.Fprintf(&b, "%dd", n)
		d -= n * Day
	}
	if d > 0 {
		s := d.String()
		if t, ok := strings.CutSuffix(s, "m0s"); ok {
			s = t + "m"
		}
		if t, ok := strings.CutSuffix(s, "h0m"); ok {
			s = t + "h"
		}
		b.WriteString(s)
	}
	return b.String()
}
