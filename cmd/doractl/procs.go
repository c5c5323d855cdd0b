package main

import (
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/procfs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// stateDir is where doractl keeps local state: DORACTL_STATE_DIR, else
// $XDG_STATE_HOME/doractl, else ~/.local/state/doractl.
func stateDir() string {
	if d := os.Getenv("DORACTL_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "doractl")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "doractl")
	}
	return filepath.Join(home, ".local", "state", "doractl")
}

// procStart is a live process's start time in clock ticks since boot: with the pid it
// names a process uniquely, so a reused pid is never mistaken for ours.
func procStart(pid int) (uint64, error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	if st.State == 'Z' || st.State == 'X' {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return st.StartTime, nil
}

// pidFile records a detached process started by `doractl up`: <name>.pid holds its pid
// alone (so `kill $(cat <name>.pid)` works), <name>.start its start time, which tells a
// reused pid from ours.
type pidFile struct {
	path  string
	pid   int
	start uint64
}

// startPath is the start-time file beside a pid file.
func startPath(pidPath string) string { return strings.TrimSuffix(pidPath, ".pid") + ".start" }

func writePidFile(path string, pid int) error {
	st, err := procStart(pid)
	if err != nil {
		return fmt.Errorf("read start time of %d: %w", pid, err)
	}
	if err := os.WriteFile(startPath(path), []byte(fmt.Sprintf("%d\n", st)), 0o644); err != nil {
		return fmt.Errorf("write start time of %d: %w", pid, err)
	}
	return os.WriteFile(path, []byte(fmt.Sprintf("%d\n", pid)), 0o644)
}

// readPidFile reads one pid file and its start time; ok is false when either is
// missing or unreadable (a process `up` did not finish recording).
func readPidFile(path string) (pf pidFile, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pf, false
	}
	if _, err := fmt.Sscanf(string(b), "%d", &pf.pid); err != nil {
		return pf, false
	}
	sb, err := os.ReadFile(startPath(path))
	if err != nil {
		return pf, false
	}
	if _, err := fmt.Sscanf(string(sb), "%d", &pf.start); err != nil {
		return pf, false
	}
	pf.path = path
	return pf, true
}

func readPidFiles(dir string) ([]pidFile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return nil, err
	}
	var out []pidFile
	for _, p := range paths {
		if pf, ok := readPidFile(p); ok {
			out = append(out, pf)
		}
	}
	return out, nil
}

// remove deletes the pid file and its start time.
func (p pidFile) remove() {
	_ = os.Remove(p.path)
	_ = os.Remove(startPath(p.path))
}

// alive reports whether the recorded process still runs (same pid, same start time).
func (p pidFile) alive() bool {
	st, err := procStart(p.pid)
	return err == nil && st == p.start
}

func (p pidFile) name() string { return strings.TrimSuffix(filepath.Base(p.path), ".pid") }

func (p pidFile) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", p.name(), p.pid, err)
	}
	return nil
}

// terminate asks the process to exit: SIGTERM, then SIGCONT so that a stopped (frozen)
// process runs to handle it.
func (p pidFile) terminate() {
	_ = p.signal(syscall.SIGTERM)
	_ = p.signal(syscall.SIGCONT)
}

// spawnDetached starts this executable with args in a new session, its output appended
// to logPath, and records its pid.
func spawnDetached(name string, dir string, args []string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find doractl executable: %w", err)
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	if err := writePidFile(filepath.Join(dir, name+".pid"), pid); err != nil {
		return pid, err
	}
	// Reap it if it exits while we still run, so it never lingers as a zombie.
	go func() { _ = cmd.Wait() }()
	return pid, nil
}
