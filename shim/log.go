package shim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cargo-shim/cargo-shim/shim/store"
)

// LogMode is CARGO_SHIM_LOG.
type LogMode int

const (
	LogInfo LogMode = iota
	LogQuiet
	LogDebug
	LogJSON
	LogVerbose // info lines plus Verbose lines (cargo -v)
)

func ParseLogMode(s string) (LogMode, error) {
	switch s {
	case "", "info":
		return LogInfo, nil
	case "quiet":
		return LogQuiet, nil
	case "verbose":
		return LogVerbose, nil
	case "debug":
		return LogDebug, nil
	case "json":
		return LogJSON, nil
	}
	return LogInfo, fmt.Errorf("unknown log mode %q (want quiet, info, verbose, debug or json)", s)
}

// Verbosity is the log mode of a run: CARGO_SHIM_LOG when set, else what
// cargo's own -q, -v, CARGO_TERM_QUIET and CARGO_TERM_VERBOSE ask of cargo
// (quiet: warnings only; -v: a line on what the shim did; -vv: debug).
func Verbosity(configured LogMode, getenv Getenv, cmd Command) LogMode {
	if getenv("CARGO_SHIM_LOG") != "" {
		return configured
	}
	switch {
	case cmd.Quiet:
		return LogQuiet
	case cmd.Verbose >= 2:
		return LogDebug
	case cmd.Verbose == 1:
		return LogVerbose
	case isTrue(getenv("CARGO_TERM_QUIET")):
		return LogQuiet
	case isTrue(getenv("CARGO_TERM_VERBOSE")):
		return LogVerbose
	}
	return configured
}

// Logger writes cargo-style status lines to stderr: a right-aligned verb,
// green for progress, yellow "warning:" and red "error:" prefixes.
type Logger struct {
	W     io.Writer
	Mode  LogMode
	Color bool
	// Bare drops the "cargo-shim: " after "warning:" and "error:": the
	// drop-in's lines mix with cargo's, the admin command's do not.
	Bare bool
}

// Style is a status verb's colour, as cargo's: green for done or under
// way, yellow for a warning, red for an error, cyan for a note.
type Style string

const (
	Done    Style = "1;32"
	Warning Style = "1;33"
	Failure Style = "1;31"
	Note    Style = "1;36"
)

// NewLogger honours CARGO_TERM_COLOR (always, never, auto) and NO_COLOR.
func NewLogger(w *os.File, mode LogMode, getenv Getenv) *Logger {
	l := &Logger{W: w, Mode: mode}
	switch strings.ToLower(getenv("CARGO_TERM_COLOR")) {
	case "always":
		l.Color = true
	case "never":
		l.Color = false
	default:
		_, err := unix.IoctlGetTermios(int(w.Fd()), unix.TCGETS)
		l.Color = err == nil && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	}
	return l
}

func (l *Logger) paint(code, s string) string {
	if !l.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (l *Logger) json(level, verb, msg string) {
	b, _ := json.Marshal(map[string]string{
		"time": time.Now().UTC().Format(time.RFC3339Nano), "level": level, "verb": verb, "msg": msg,
	})
	fmt.Fprintf(l.W, "%s\n", b)
}

// Fprintf is fmt.Fprintf with every string, error and Stringer argument
// made store.Printable: for lines written outside the Logger.
func Fprintf(w io.Writer, format string, args ...any) {
	for n, a := range args {
		switch v := a.(type) {
		case string:
			args[n] = store.Printable(v)
		case error:
			args[n] = store.Printable(v.Error())
		case fmt.Stringer:
			args[n] = store.Printable(v.String())
		}
	}
	fmt.Fprintf(w, format, args...)
}

// Status prints "   Repairing fnv v1.0.7 (src/lib.rs missing)".
func (l *Logger) Status(verb, msg string) { l.Line(Done, verb, msg) }

// Line prints a status line with the verb in style s.
func (l *Logger) Line(s Style, verb, msg string) {
	switch l.Mode {
	case LogQuiet:
	case LogJSON:
		l.json("info", verb, msg)
	default:
		fmt.Fprintf(l.W, "%s %s\n", l.paint(string(s), fmt.Sprintf("%12s", verb)), store.Printable(msg))
	}
}

// Help prints "help: ..." (a suggested next step), as cargo does.
func (l *Logger) Help(format string, args ...any) {
	if l.Mode == LogInfo || l.Mode == LogVerbose || l.Mode == LogDebug {
		fmt.Fprintf(l.W, "%s %s\n", l.paint("1;36", "help:"), store.Printable(fmt.Sprintf(format, args...)))
	}
}

// Warn prints "warning: cargo-shim: ..." (also in quiet mode: a warning
// always means something the user should act on).
func (l *Logger) Warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.Mode == LogJSON {
		l.json("warning", "", msg)
		return
	}
	fmt.Fprintf(l.W, "%s %s%s\n", l.paint(string(Warning), "warning:"), l.prefix(), store.Printable(msg))
}

// Error prints "error: cargo-shim: ...".
func (l *Logger) Error(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.Mode == LogJSON {
		l.json("error", "", msg)
		return
	}
	fmt.Fprintf(l.W, "%s %s%s\n", l.paint(string(Failure), "error:"), l.prefix(), store.Printable(msg))
}

// Verbose prints a status line only with cargo -v (or debug).
func (l *Logger) Verbose(verb, msg string) {
	if l.Mode == LogVerbose || l.Mode == LogDebug {
		fmt.Fprintf(l.W, "%s %s\n", l.paint(string(Done), fmt.Sprintf("%12s", verb)), store.Printable(msg))
	}
}

// Debug prints only with CARGO_SHIM_LOG=debug (or json).
func (l *Logger) Debug(format string, args ...any) {
	switch l.Mode {
	case LogDebug:
		fmt.Fprintf(l.W, "%s %s\n", l.paint("2", fmt.Sprintf("%12s", "[cargo-shim]")), store.Printable(fmt.Sprintf(format, args...)))
	case LogJSON:
		l.json("debug", "", fmt.Sprintf(format, args...))
	}
}

func (l *Logger) prefix() string {
	if l.Bare {
		return ""
	}
	return "cargo-shim: "
}
