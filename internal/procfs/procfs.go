// Package procfs reads what doractl needs of Linux's /proc: a process's state, process
// group, start time and CPU time, and the processes whose command line or environment
// mention something.
package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat doractl reads.
type Stat struct {
	State     byte   // R, S, D, T, Z, X, ...
	Pgrp      int    // process group id
	UTime     uint64 // user CPU time, clock ticks
	STime     uint64 // system CPU time, clock ticks
	StartTime uint64 // clock ticks after boot: with the pid, names one process uniquely
}

// ReadStat parses /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	// The command name is in parentheses and may hold spaces or parentheses itself: the
	// fields that follow start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[11] and f[12] fields 14 and 15
	// (utime, stime), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) == 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	st := Stat{State: f[0][0]}
	if st.Pgrp, err = strconv.Atoi(f[2]); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat pgrp: %w", pid, err)
	}
	if st.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat utime: %w", pid, err)
	}
	if st.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat stime: %w", pid, err)
	}
	if st.StartTime, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat starttime: %w", pid, err)
	}
	return st, nil
}

// Alive reports whether a process exists and is not a zombie.
func Alive(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// Pids lists every process's pid except this process's own.
func Pids() []int {
	ents, _ := os.ReadDir("/proc")
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// Cmdline is a process's command line, arguments joined by spaces ("" if unreadable).
func Cmdline(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// Environ is a process's environment as KEY=VALUE entries (nil if unreadable).
func Environ(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// Find lists the live (not zombie) processes, other than this one, for which match is true.
func Find(match func(pid int) bool) []int {
	var out []int
	for _, pid := range Pids() {
		if match(pid) && Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
