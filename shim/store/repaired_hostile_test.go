package store

import (
	"os"
	"testing"
	"time"
)

// Rule: whatever another uid does to the repair journal directory, reading
// its stamp waits a bounded time: a directory whose times are kept "now"
// yields an unsettled stamp (the caller then records nothing), never an
// endless wait while the run holds every crate's lock. Four loops set the
// directory's times without pause, as a uid that owns it can; the guard
// is a hang guard, not a speed bound.
func TestRepairStampBoundedWhileTouched(t *testing.T) {
	r := formatRegistry(t)
	dir := r.RepairedDir()
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	for k := 0; k < 4; k++ {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					now := time.Now()
					os.Chtimes(dir, now, now)
				}
			}
		}()
	}
	done := make(chan bool, 1)
	go func() {
		// A scheduling gap of a racy window may let one call settle.
		for try := 0; try < 5; try++ {
			if stamp, settled := r.RepairStamp(); stamp != "" && !settled {
				done <- true
				return
			}
		}
		done <- false
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("RepairStamp settled on a journal kept touched, 5 times in a row: it waited the toucher out")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("RepairStamp did not return while the journal was touched")
	}
}
