package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/doractl/doractl/proto"
)

// startDataflow starts the dataflow's timers and then its nodes, in order. It runs on its
// own goroutine: the spawn request was acknowledged already and progress is reported with
// node status events.
func (d *Daemon) startDataflow(df *dataflow) {
	startTimers(df.ctx, df.router.timerRoutes())
	for _, n := range df.list() {
		d.startNode(n)
	}
}

// startNode spawns one node's process (or, for a dynamic node, starts waiting for it).
// A node that cannot be started ends as failed; the daemon carries on.
func (d *Daemon) startNode(n *localNode) {
	df := n.df
	df.mu.Lock()
	switch {
	case n.final:
		df.mu.Unlock()
		return
	case df.stopping:
		d.finish(n, proto.NodeStopped, "stopped (before start)", 0, "")
		df.mu.Unlock()
		d.nodeGone(n)
		return
	case n.dynamic:
		d.setStatus(n, proto.NodeWaiting)
		df.mu.Unlock()
		return
	}
	n.starting = true
	df.mu.Unlock()

	if d.cfg.NodeParentDeathSignal {
		d.spawnLocked(n)
		return
	}
	if cmd, logf, ok := d.spawn(n); ok {
		go d.supervise(n, cmd, logf)
	}
}

// spawn starts a node's process and records it; false when it could not be started (the
// node then has its outcome already). The caller supervises the process.
func (d *Daemon) spawn(n *localNode) (*exec.Cmd, *os.File, bool) {
	df := n.df
	cmd, logf, err := d.command(n)
	if err == nil {
		err = cmd.Start()
		if err != nil {
			err = fmt.Errorf("start %s: %w", cmd.Path, err)
		}
	}
	if err != nil {
		if logf != nil {
			fmt.Fprintf(logf, "doractl: node %s could not be started: %v\n", n.spec.ID, err)
			_ = logf.Close()
		}
		d.log.Warn("node could not be started", "dataflow", df.id, "node", n.spec.ID, "error", err)
		df.mu.Lock()
		n.starting = false
		d.finish(n, proto.NodeFailed, fmt.Sprintf("failed (spawn: %v)", err), -1, "")
		df.mu.Unlock()
		d.nodeGone(n)
		return nil, nil, false
	}

	pid := cmd.Process.Pid
	start, serr := procStartTime(pid)
	if serr != nil {
		d.log.Debug("no start time for node process", "pid", pid, "error", serr)
	}
	d.pids.add(nodeRecord{
		Dataflow: df.id, Node: n.spec.ID, PID: pid, PGID: pid, StartTime: start, Epoch: d.epoch,
	})
	df.mu.Lock()
	n.starting = false
	n.cmd, n.pid, n.logFile = cmd, pid, logf
	d.setStatus(n, proto.NodeRunning)
	forced := n.killOutcome != ""
	df.mu.Unlock()
	d.log.Info("node started", "dataflow", df.id, "node", n.spec.ID, "pid", pid)
	if forced {
		_ = killGroup(pid, syscall.SIGKILL) // a force stop arrived while it was starting
	}
	return cmd, logf, true
}

// command builds the process of a node: its own process group, output appended to its
// log file, the daemon's environment plus the node's and the DORACTL_* variables.
func (d *Daemon) command(n *localNode) (*exec.Cmd, *os.File, error) {
	spec := n.spec
	if err := os.MkdirAll(filepath.Dir(n.logPath), 0o755); err != nil {
		return nil, nil, fmt.Errorf("log folder: %w", err)
	}
	logf, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open log: %w", err)
	}
	if err := checkWorkingDir(spec.WorkingDir); err != nil {
		return nil, logf, err
	}
	var path string
	var args []string
	if spec.Path == proto.ShellNodePath {
		sh, err := exec.LookPath("sh")
		if err != nil {
			sh = "/bin/sh"
		}
		path, args = sh, []string{"-c", strings.Join(spec.Args, " ")}
	} else {
		p, err := resolveExecutable(spec.Path, spec.WorkingDir)
		if err != nil {
			return nil, logf, err
		}
		path, args = p, spec.Args
	}
	env := os.Environ()
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	env = append(env,
		proto.EnvDaemonAddr+"=unix:"+d.sockPath,
		proto.EnvDataflowID+"="+n.df.id,
		proto.EnvNodeID+"="+spec.ID,
		proto.EnvNodeToken+"="+n.token,
		// With EnvDaemonAddr it marks the processes of this life of this daemon, recorded
		// in nodes.json or not (a crash right after a fork): see killUnrecorded.
		proto.EnvDaemonEpoch+"="+strconv.FormatInt(d.epoch, 10),
	)
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{path}, args...),
		Dir:         spec.WorkingDir,
		Env:         env,
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: d.parentDeathSignal()},
	}
	return cmd, logf, nil
}

// checkWorkingDir reports a node working directory ("" is the daemon's) that is missing
// or not a directory.
func checkWorkingDir(wd string) error {
	if wd == "" {
		return nil
	}
	st, err := os.Stat(wd)
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("working directory %s is not a directory", wd)
	}
	return nil
}

// resolveExecutable finds a node's executable as dora-rs does. A path with a slash is
// taken relative to the working directory. A bare name is taken from the working
// directory if a regular file of that name is there (the coordinator sends as working
// directory the folder that relative paths resolve against: the descriptor's, or
// deploy.working_dir), else looked up in PATH. With no working directory, a bare name
// is only looked up in PATH.
func resolveExecutable(p, wd string) (string, error) {
	if p == "" {
		return "", errors.New("node has no path")
	}
	if !strings.Contains(p, "/") {
		if wd != "" {
			beside := filepath.Join(wd, p)
			if st, err := os.Stat(beside); err == nil && st.Mode().IsRegular() {
				if !filepath.IsAbs(beside) {
					// exec.Cmd takes a relative Path against Dir, which is wd itself.
					if beside, err = filepath.Abs(beside); err != nil {
						return "", fmt.Errorf("executable %s: %w", p, err)
					}
				}
				return checkExecutable(beside, st)
			}
		}
		found, err := exec.LookPath(p)
		switch {
		case errors.Is(err, exec.ErrNotFound) && wd != "":
			return "", fmt.Errorf("%s: not in working directory %s, and %w (PATH=%s)",
				p, wd, exec.ErrNotFound, os.Getenv("PATH"))
		case errors.Is(err, exec.ErrNotFound):
			return "", fmt.Errorf("%s: %w (PATH=%s)", p, exec.ErrNotFound, os.Getenv("PATH"))
		case err != nil:
			return "", fmt.Errorf("executable %s: %w", p, err)
		}
		return found, nil
	}
	if !filepath.IsAbs(p) && wd != "" {
		p = filepath.Join(wd, p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("executable: %w", err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("executable %s is a directory", p)
	}
	return checkExecutable(p, st)
}

// checkExecutable returns p if its mode st lets it be executed.
func checkExecutable(p string, st os.FileInfo) (string, error) {
	if st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("executable %s is not executable (mode %v)", p, st.Mode().Perm())
	}
	return p, nil
}
