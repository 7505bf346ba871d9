package events

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nobody = 65534

func env(kv ...string) Getenv {
	return func(k string) string {
		for n := 0; n+1 < len(kv); n += 2 {
			if kv[n] == k {
				return kv[n+1]
			}
		}
		return ""
	}
}

// The job is CARGO_SHIM_JOB, else the first CI system whose variables are
// all set.
func TestJobID(t *testing.T) {
	for _, tc := range []struct {
		env  Getenv
		want string
	}{
		{env(), ""},
		{env("CARGO_SHIM_JOB", "mine", "CI_JOB_ID", "7"), "mine"},
		{env("GITHUB_RUN_ID", "123", "GITHUB_JOB", "build"), "github:123/build"},
		{env("GITHUB_RUN_ID", "123", "CI_JOB_ID", "7"), "gitlab:7"},
		{env("BUILDKITE_JOB_ID", "b-1"), "buildkite:b-1"},
		{env("BUILD_TAG", "jenkins-app-42"), "jenkins:jenkins-app-42"},
	} {
		if got := JobID(tc.env); got != tc.want {
			t.Errorf("JobID = %q, want %q", got, tc.want)
		}
	}
}

func myFile(root string) string {
	return filepath.Join(root, DirRel, strconv.Itoa(os.Geteuid())+".jsonl")
}

// Rule: a uid's log never holds more than 2*MaxFile: the file rotates to
// .1 before a line would take it past MaxFile, and the newest events
// survive the rotation.
func TestRotationKeepsTheLogBounded(t *testing.T) {
	defer func(n int64) { MaxFile = n }(MaxFile)
	MaxFile = 4 << 10
	root := t.TempDir()
	l := ForRegistry(root, env("CARGO_SHIM_JOB", "j1"), "cargo")
	for n := 0; n < 500; n++ {
		l.Emit(Event{Kind: KindRepair, Action: "reextracted", Crate: "c" + strconv.Itoa(n), Version: "1.0.0", Reason: strings.Repeat("x", 40)})
	}
	for _, p := range []string{myFile(root), myFile(root) + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > MaxFile {
			t.Errorf("%s is %d bytes, over the cap of %d", p, fi.Size(), MaxFile)
		}
	}
	rep, err := ReadRegistry(root, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) == 0 || rep.Events[len(rep.Events)-1].Crate != "c499" || rep.Garbage != 0 {
		t.Fatalf("newest event lost or garbage read: %d events, garbage %d", len(rep.Events), rep.Garbage)
	}
	last := rep.Events[len(rep.Events)-1]
	if !last.Trusted || last.Job != "j1" || last.UID != os.Geteuid() || last.V != FormatVersion || last.PID != os.Getpid() {
		t.Fatalf("event as read: %+v", last)
	}
}

// Rule: the writer never follows a symlink, never blocks on a FIFO, and
// never appends to a file another uid owns (or a hard link) at its name:
// root's events go nowhere rather than into another uid's file.
func TestWriterRefusesWhatItDoesNotOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant files as another uid")
	}
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("keep\n"), 0o666)
	plant := map[string]func(p string) error{
		"symlink": func(p string) error { return os.Symlink(outside, p) },
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o666) },
		"foreign": func(p string) error {
			if err := os.WriteFile(p, []byte("theirs\n"), 0o666); err != nil {
				return err
			}
			return os.Chown(p, nobody, nobody)
		},
		"hardlink": func(p string) error { return os.Link(outside, p) },
	}
	for name, fn := range plant {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, DirRel), 0o1777)
			p := myFile(root)
			if err := fn(p); err != nil {
				t.Fatal(err)
			}
			// What was planted, held open: root replaces the name (see
			// TestWriterReplacesPlanted), never writes into the file.
			var theirs *os.File
			if name == "foreign" {
				theirs, _ = os.Open(p)
				defer theirs.Close()
			}
			var failed error
			l := ForRegistry(root, env(), "cargo")
			l.Failed = func(err error) { failed = err }
			l.Emit(Event{Kind: KindRepair, Crate: "c"})
			if failed == nil {
				t.Fatalf("an event was written to a planted %s", name)
			}
			if b, _ := os.ReadFile(outside); string(b) != "keep\n" {
				t.Fatalf("wrote through a planted %s: %q", name, b)
			}
			if name == "foreign" {
				if b, _ := io.ReadAll(theirs); string(b) != "theirs\n" {
					t.Fatalf("appended to another uid's file: %q", b)
				}
			}
		})
	}
}

// Rule: a file another uid planted at root's event log name before root's
// first event (the events directory is sticky and shared) does not lose
// root's events for good: root renames a fresh file of its own over it,
// says so once (debug), and appends there; the planted file is not written.
func TestWriterReplacesPlanted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant files as another uid")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, DirRel), 0o1777)
	p := myFile(root)
	// Planted by uid 65534 (made here and given to it: the test's temp dir
	// is not reachable for it).
	if err := os.WriteFile(p, []byte("theirs\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, nobody, nobody)
	theirs, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	var said []error
	l := ForRegistry(root, env(), "cargo")
	l.Failed = func(err error) { said = append(said, err) }
	l.Emit(Event{Kind: KindRepair, Crate: "one"})
	l.Emit(Event{Kind: KindRepair, Crate: "two"})
	if len(said) != 1 || !strings.Contains(said[0].Error(), "replaced") {
		t.Fatalf("want one note of the replacement, got %v", said)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil || st.Uid != 0 {
		t.Fatalf("%s is not root's after the events: %v, uid %d", p, err, st.Uid)
	}
	if b, _ := os.ReadFile(p); strings.Count(string(b), "\n") != 2 {
		t.Fatalf("root's log holds %q, want its 2 events", b)
	}
	if b, _ := io.ReadAll(theirs); string(b) != "theirs\n" {
		t.Fatalf("wrote into the planted file: %q", b)
	}
}

// Rule: a read is bounded whatever the files hold: a 100 MiB file of
// garbage costs at most the tail the reader takes (it is not read whole),
// its garbage lines are counted, and lines another uid wrote claiming to
// be root are marked untrusted with the file's real owner.
func TestReaderBoundedAndMarksForeignLines(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write as another uid")
	}
	root := t.TempDir()
	dir := filepath.Join(root, DirRel)
	os.MkdirAll(dir, 0o1777)
	// uid 65534's own file: garbage, then a line claiming uid 0.
	forged, _ := json.Marshal(Event{V: FormatVersion, Time: time.Now(), Kind: KindRepair, Crate: "forged", UID: 0})
	big := filepath.Join(dir, strconv.Itoa(nobody)+".jsonl")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	junk := []byte(strings.Repeat("garbage ", 127) + "\n")
	for n := 0; n < 100<<20/len(junk); n++ {
		w.Write(junk)
	}
	w.Write(append(forged, '\n'))
	w.Flush()
	f.Close()
	os.Chown(big, nobody, nobody)
	// uid 65534 planting root's name: read, but not trusted.
	planted := filepath.Join(dir, "0.jsonl")
	os.WriteFile(planted, append(forged, '\n'), 0o644)
	os.Chown(planted, nobody, nobody)
	syscall.Mkfifo(filepath.Join(dir, "1.jsonl"), 0o666)
	os.Symlink("/etc/passwd", filepath.Join(dir, "2.jsonl"))

	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	rep, err := ReadRegistry(root, time.Time{})
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != 2 {
		t.Fatalf("read %d events, want the 2 forged ones: %+v", len(rep.Events), rep)
	}
	for _, e := range rep.Events {
		if e.Trusted || e.FileUID != nobody || e.UID != 0 {
			t.Fatalf("a forged line is trusted or misattributed: %+v", e)
		}
	}
	if rep.Garbage == 0 || rep.Garbage > int(maxTail)/len(junk)+1 {
		t.Fatalf("%d garbage lines: the reader took in more than its tail", rep.Garbage)
	}
	if len(rep.Refused) != 2 {
		t.Fatalf("the FIFO and the symlink should be refused, got %q", rep.Refused)
	}
	// Whole-file reading would take >100 MiB of memory.
	if grew := (after.Maxrss - before.Maxrss) << 10; grew > 32<<20 {
		t.Fatalf("reading grew the process by %d MiB", grew>>20)
	}
}
