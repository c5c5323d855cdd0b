package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	sigKILL = syscall.SIGKILL
	sigSTOP = syscall.SIGSTOP
	sigCONT = syscall.SIGCONT
)

// Command returns a command that runs name inside h's network namespace
// (through `ip netns exec`, which execs it: the process's pid is the
// program's). It starts in a process group of its own; cancelling ctx kills
// the whole group. Freeze, Thaw and Kill reach it once it runs, like every
// process in the namespace; Start also tracks it and logs its output.
//
// The command gets SIGKILL when the calling process dies, so a crashed or
// timed-out test leaves nothing running. The kernel ties that signal to the
// OS thread that started the command: do not start commands from a goroutine
// that locks its thread (runtime.LockOSThread) and exits while locked.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Namespace, name}, args...)...)
	// Pdeathsig: when this process dies (a crash, a test timeout), what it
	// started in the bed dies too instead of running on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, sigKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Process is a process started with Host.Start or Host.StartCmd.
type Process struct {
	Host *Host
	Cmd  *exec.Cmd

	name    string
	logPath string
	done    chan struct{}
	err     error // valid once done is closed
}

// Start runs name inside h's namespace as a tracked process, its stdout and
// stderr appended to the file LogPath. ctx bounds its life: cancelling ctx
// kills its process group.
func (h *Host) Start(ctx context.Context, name string, args ...string) (*Process, error) {
	return h.StartCmd(h.Command(ctx, name, args...))
}

// StartCmd starts a command made with h.Command (its Env, Dir and so on set
// by the caller) as a tracked process. Stdout and stderr left nil go to the
// process's log file.
func (h *Host) StartCmd(cmd *exec.Cmd) (*Process, error) {
	b := h.bed
	if err := b.check(h); err != nil {
		return nil, err
	}
	if len(cmd.Args) < 4 {
		return nil, fmt.Errorf("testbed: start on %s: not a command made by Host.Command: %s", h.Name, cmd)
	}
	name := cmd.Args[3]
	logPath, err := b.newLogPath(h, name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testbed: start %s on %s: log file: %w", name, h.Name, err)
	}
	defer f.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	if cmd.Stderr == nil {
		cmd.Stderr = f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: start `%s` on %s: %w", strings.Join(cmd.Args, " "), h.Name, err)
	}
	p := &Process{Host: h, Cmd: cmd, name: name, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	b.mu.Lock()
	b.procs = append(b.procs, p)
	closed := b.closed
	b.mu.Unlock()
	if closed {
		// Close ran meanwhile and did not see p.
		p.signalGroup(sigKILL)
		return nil, errors.New("testbed: bed is closed")
	}
	b.log.Debug("started", "host", h.Name, "pid", p.Pid(), "cmd", cmd.String(), "log", logPath)
	return p, nil
}

func (b *Bed) newLogPath(h *Host, name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.logDir == "" {
		dir, err := os.MkdirTemp("", "testbed-"+b.name+"-")
		if err != nil {
			return "", fmt.Errorf("testbed: log dir: %w", err)
		}
		b.logDir, b.ownLogDir = dir, true
	} else if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return "", fmt.Errorf("testbed: log dir: %w", err)
	}
	b.seq++
	return filepath.Join(b.logDir, fmt.Sprintf("%s-%s-%d.log", h.Name, filepath.Base(name), b.seq)), nil
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// LogPath is the file that receives the process's stdout and stderr.
func (p *Process) LogPath() string { return p.logPath }

// Log returns what the process has written so far.
func (p *Process) Log() (string, error) {
	out, err := os.ReadFile(p.logPath)
	if err != nil {
		return "", fmt.Errorf("testbed: log of %s on %s: %w", p.name, p.Host.Name, err)
	}
	return string(out), nil
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error (nil after
// exit status 0), or ctx's error first.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("testbed: wait for %s (pid %d) on %s: %w", p.name, p.Pid(), p.Host.Name, ctx.Err())
	}
}

// Signal sends sig to the process's group.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("testbed: signal %v to process group %d on %s: %w", sig, p.Pid(), p.Host.Name, err)
	}
	return nil
}

func (p *Process) signalGroup(sig syscall.Signal) { _ = p.Signal(sig) }

func (p *Process) waitDone(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// hostProcs returns the tracked processes of h that still run.
func (b *Bed) hostProcs(h *Host) []*Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*Process
	for _, p := range b.procs {
		if p.Host == h && !p.exited() {
			out = append(out, p)
		}
	}
	return out
}

// signalHost sends sig to the group of every tracked process of h, then to
// every process inside h's namespace (twice, to catch children forked
// meanwhile). It returns the pids it signalled.
func (b *Bed) signalHost(h *Host, sig syscall.Signal) ([]int, error) {
	seen := map[int]bool{}
	for _, p := range b.hostProcs(h) {
		if err := p.Signal(sig); err != nil {
			return nil, err
		}
		seen[p.Pid()] = true
	}
	for range 2 {
		pids, err := nsPIDs(h.Namespace)
		if err != nil {
			return nil, err
		}
		for _, pid := range pids {
			if pid == os.Getpid() {
				continue
			}
			if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				return nil, fmt.Errorf("testbed: signal %v to pid %d on %s: %w", sig, pid, h.Name, err)
			}
			seen[pid] = true
		}
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	return out, nil
}

// Freeze stops (SIGSTOP) every process of h: those started through the bed
// and any other inside its namespace. It returns once they are all stopped.
func (b *Bed) Freeze(h *Host) error {
	if err := b.check(h); err != nil {
		return err
	}
	pids, err := b.signalHost(h, sigSTOP)
	if err != nil {
		return fmt.Errorf("testbed: freeze %s: %w", h.Name, err)
	}
	b.mu.Lock()
	b.frozen[h] = true
	b.mu.Unlock()
	ctx, cancel := b.ctx()
	defer cancel()
	if err := waitFor(ctx, func() bool {
		for _, pid := range pids {
			if st, ok := procState(pid); ok && st != 'T' && st != 't' && st != 'Z' && st != 'X' {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("testbed: freeze %s: processes %v not all stopped: %w", h.Name, pids, err)
	}
	b.log.Debug("frozen", "host", h.Name, "pids", pids)
	return nil
}

// Thaw resumes (SIGCONT) every process of h.
func (b *Bed) Thaw(h *Host) error {
	if err := b.check(h); err != nil {
		return err
	}
	pids, err := b.signalHost(h, sigCONT)
	if err != nil {
		return fmt.Errorf("testbed: thaw %s: %w", h.Name, err)
	}
	b.mu.Lock()
	delete(b.frozen, h)
	b.mu.Unlock()
	b.log.Debug("thawed", "host", h.Name, "pids", pids)
	return nil
}

// Kill sends SIGKILL to every process of h and returns once the tracked ones
// are reaped and the namespace holds no process.
func (b *Bed) Kill(h *Host) error {
	if err := b.check(h); err != nil {
		return err
	}
	procs := b.hostProcs(h)
	pids, err := b.signalHost(h, sigKILL)
	if err != nil {
		return fmt.Errorf("testbed: kill %s: %w", h.Name, err)
	}
	b.mu.Lock()
	delete(b.frozen, h)
	b.mu.Unlock()
	ctx, cancel := b.ctx()
	defer cancel()
	for _, p := range procs {
		if err := p.waitDone(ctx); err != nil {
			return fmt.Errorf("testbed: kill %s: pid %d not reaped: %w", h.Name, p.Pid(), err)
		}
	}
	if err := waitFor(ctx, func() bool {
		left, err := nsPIDs(h.Namespace)
		return err == nil && len(left) == 0
	}); err != nil {
		left, _ := nsPIDs(h.Namespace)
		return fmt.Errorf("testbed: kill %s: processes %v still in %s: %w", h.Name, left, h.Namespace, err)
	}
	b.log.Debug("killed", "host", h.Name, "pids", pids)
	return nil
}

// killNamespace SIGKILLs every process in the namespace and waits until none
// is left, so that deleting the namespace really frees it.
func killNamespace(ctx context.Context, ns string) error {
	for {
		pids, err := nsPIDs(ns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, sigKILL)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbed: processes %v in %s did not die: %w", pids, ns, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// nsPIDs lists the processes whose network namespace is the named one (what
// `ip netns pids` prints). Zombies have no namespace and are not listed.
func nsPIDs(ns string) ([]int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, ns), &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("testbed: stat namespace %s: %w", ns, err)
	}
	want := "net:[" + strconv.FormatUint(st.Ino, 10) + "]"
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("testbed: list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/ns/net")
		if err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procState returns the state letter of /proc/PID/stat ('R', 'S', 'T', ...).
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// procStart returns the start time of a process (field 22 of
// /proc/PID/stat), or -1 if it does not exist.
func procStart(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return -1
	}
	n, err := strconv.Atoi(f[19])
	if err != nil {
		return -1
	}
	return n
}

func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
