package daemon

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/doractl/doractl/proto"
)

// exitContext is what the daemon did to a node before it exited.
type exitContext struct {
	stopRequested bool   // a Stop event was sent (or queued for when it connects)
	signalled     bool   // we sent SIGTERM or SIGKILL after the grace period
	killOutcome   string // we killed it on purpose without a grace (force, fence)
}

// nodeOutcome is a final node status.
type nodeOutcome struct {
	status, outcome string
	code            int
	signal          string
}

// classify turns a process's wait status into its outcome:
//
//	killed on purpose (force, fence)  -> killed, that reason
//	ended after our SIGTERM/SIGKILL   -> killed, "killed after grace"
//	killed by another signal          -> failed, "failed (signal SIGSEGV)"
//	exit N != 0                       -> failed, "failed (exit N)"
//	exit 0 after a Stop               -> stopped
//	exit 0 on its own                 -> finished
func classify(ws syscall.WaitStatus, c exitContext) nodeOutcome {
	code, sig := ws.ExitStatus(), ""
	if ws.Signaled() {
		code, sig = -1, unix.SignalName(ws.Signal())
		if sig == "" {
			sig = fmt.Sprintf("signal %d", int(ws.Signal()))
		}
	}
	switch {
	case c.killOutcome != "":
		return nodeOutcome{proto.NodeKilled, c.killOutcome, code, sig}
	case c.signalled:
		return nodeOutcome{proto.NodeKilled, "killed after grace", code, sig}
	case ws.Signaled():
		return nodeOutcome{proto.NodeFailed, fmt.Sprintf("failed (signal %s)", sig), code, sig}
	case code != 0:
		return nodeOutcome{proto.NodeFailed, fmt.Sprintf("failed (exit %d)", code), code, sig}
	case c.stopRequested:
		return nodeOutcome{proto.NodeStopped, "stopped", 0, ""}
	default:
		return nodeOutcome{proto.NodeFinished, "finished", 0, ""}
	}
}
