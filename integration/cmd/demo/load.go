package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loadedShare is the share of the machine's CPU that other processes may
// use during the warm round before the demo says its timing was taken on a
// loaded machine.
const loadedShare = 0.2

// loadProbe measures how much CPU processes other than the demo's own used
// over an interval: the machine's busy time (/proc/stat) less what the
// demo's reaped children (the cargos, rustcs and holders) used.
type loadProbe struct {
	t0       time.Time
	busy0    float64
	children float64
}

func startLoad() loadProbe {
	return loadProbe{t0: time.Now(), busy0: machineBusy(), children: childrenCPU()}
}

// other is the share of all cores' time others used since the start.
func (p loadProbe) other() float64 {
	wall := time.Since(p.t0).Seconds() * float64(runtime.NumCPU())
	if wall <= 0 {
		return 0
	}
	others := (machineBusy() - p.busy0) - (childrenCPU() - p.children)
	return max(0, others/wall)
}

// machineBusy is the seconds all cores spent not idle since boot.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	// user, nice, system, (idle, iowait,) irq, softirq; guest time is
	// already in user, steal is not this machine's.
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		if i < len(f) {
			n, _ := strconv.ParseFloat(f[i], 64)
			busy += n
		}
	}
	return busy / 100 // USER_HZ
}

// childrenCPU is the CPU seconds of this process's reaped descendants.
func childrenCPU() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
