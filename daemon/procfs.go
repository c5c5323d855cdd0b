package daemon

import "github.com/doractl/doractl/internal/procfs"

// procStartTime returns a process's start time in clock ticks after boot: with the pid it
// names one process, so a recorded node is never confused with a reused pid.
func procStartTime(pid int) (uint64, error) {
	st, err := procfs.ReadStat(pid)
	return st.StartTime, err
}

// procAlive reports whether a process exists and is not a zombie.
func procAlive(pid int) bool { return procfs.Alive(pid) }
