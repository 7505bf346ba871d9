package lockfile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// A waiter lists the runs that hold locks now: a note is live while its
// holder keeps it locked; one left by a holder that died (its lock free) is
// not listed, and is removed. A name another uid made prints safely.
func TestNotesNameLiveHoldersOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "holders")
	start := time.Unix(1765000000, 0)
	a := Note{Host: "hostA", Pid: 1, Uid: 0, Start: start, Command: "build"}
	self := Note{Host: "hostA", Pid: 2, Uid: 1000, Start: start, Command: "check"}
	dead := Note{Host: "hostB", Pid: 3, Uid: 0, Start: start, Command: "build"}
	fa, err := PublishNote(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := PublishNote(dir, self)
	if err != nil {
		t.Fatal(err)
	}
	// A holder that died: its note is there, nobody holds it.
	if err := os.WriteFile(filepath.Join(dir, dead.Name()+NoteSuffix), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := LiveNotes(dir, self)
	if want := []Note{a}; !reflect.DeepEqual(got, want) {
		t.Errorf("live notes %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, dead.Name()+NoteSuffix)); !os.IsNotExist(err) {
		t.Errorf("the dead holder's note is still there: %v", err)
	}
	RemoveNote(fa, dir, a)
	RemoveNote(fs, dir, self)
	if got := LiveNotes(dir, Note{}); len(got) != 0 {
		t.Errorf("notes after their holders removed them: %v", got)
	}
	if n, ok := ParseNote("7@h\x1b[2J+0+1+build.note"); ok {
		t.Errorf("a name with control characters parsed: %v", n)
	}
	if n := (Note{Host: "h\x1b[2J", Pid: 7, Command: "b;rm"}); n.Name() != "7@h--2J+0+-62135596800+b-rm" {
		t.Errorf("name %q", n.Name())
	}
}
