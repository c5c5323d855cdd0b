package daemon

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/doractl/doractl/internal/procfs"
	"github.com/doractl/doractl/proto"
)

// linkDrainTimeout bounds the wait, after a node process exits, for its link to deliver the
// messages still in the socket, so that subscribers get them before InputClosed.
const linkDrainTimeout = time.Second

// supervise waits for a node process to exit and records its outcome.
func (d *Daemon) supervise(n *localNode, cmd *exec.Cmd, logf *os.File) {
	df := n.df
	pid := cmd.Process.Pid
	if err := waitExited(pid); err != nil {
		d.log.Debug("waitid", "pid", pid, "error", err)
	}
	df.mu.Lock()
	ending := !n.stopAt.IsZero() || n.killOutcome != ""
	df.mu.Unlock()
	if ending {
		// The process is a zombie, so its group id cannot be reused yet: kill what is
		// left of the group so that a stop leaves no orphans behind, then what left
		// the group (setsid) but still carries the node's token.
		_ = killGroup(pid, syscall.SIGKILL)
		if k := killByToken(n.token, d.log); len(k) > 0 {
			d.log.Warn("killed processes the node started outside its process group", "dataflow", df.id, "node", n.spec.ID, "pids", k)
		}
	}
	_ = cmd.Wait()
	_ = logf.Close()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)

	df.mu.Lock()
	st := classify(ws, exitContext{
		stopRequested: !n.stopAt.IsZero(),
		signalled:     n.termSent || n.killSent,
		killOutcome:   n.killOutcome,
	})
	d.finish(n, st.status, st.outcome, st.code, st.signal)
	link := n.link
	df.mu.Unlock()

	if link != nil {
		select {
		case <-link.Done():
		case <-time.After(linkDrainTimeout):
			_ = link.Close()
		}
	}
	d.nodeGone(n)
}

// nodeGone ends a node's part in routing: its outputs close (after their queued data) and
// its own pending inputs are dropped.
func (d *Daemon) nodeGone(n *localNode) {
	n.df.router.closeOutputs(n.spec.ID, nil)
	n.df.router.detach(n.spec.ID)
}

// waitExited blocks until the process has exited, without reaping it.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err
	}
}

// killGroup sends sig to a process group. A group that is already gone is not an error.
func killGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return errors.New("refusing to signal process group <= 1")
	}
	err := unix.Kill(-pgid, sig)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// killByToken kills the processes whose environment carries a node's token: what the node
// started, including descendants that left its process group. It returns their pids.
func killByToken(token string, log hclog.Logger) []int {
	if token == "" {
		return nil
	}
	mark := proto.EnvNodeToken + "=" + token
	var pids []int
	for _, p := range killByEnv(func(env []string) bool { return slices.Contains(env, mark) }, log) {
		pids = append(pids, p.pid)
	}
	return pids
}

// envProc is a process found by its environment.
type envProc struct {
	pid     int
	env     []string
	cmdline string
}

// killByEnv sends SIGKILL to every process (other than this one) whose environment
// matches, and returns those it killed.
func killByEnv(match func(env []string) bool, log hclog.Logger) []envProc {
	envs := map[int][]string{}
	pids := procfs.Find(func(pid int) bool {
		env := procfs.Environ(pid)
		if !match(env) {
			return false
		}
		envs[pid] = env
		return true
	})
	var killed []envProc
	for _, pid := range pids {
		p := envProc{pid: pid, env: envs[pid], cmdline: procfs.Cmdline(pid)}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			log.Debug("kill a node process found by its environment", "pid", pid, "error", err)
			continue
		}
		killed = append(killed, p)
	}
	return killed
}
