package daemon

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
		// left of the group so that a stop leaves no orphans behind.
		_ = killGroup(pid, syscall.SIGKILL)
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
