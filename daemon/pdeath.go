package daemon

import (
	"runtime"
	"syscall"
)

// Parent-death signal (Config.NodeParentDeathSignal).
//
// Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child exits, not the
// process: a Go program's threads can exit (a goroutine that ends while locked to its
// thread takes the thread with it), which would kill a healthy node. So with the option on,
// each node is forked from a goroutine locked to its OS thread for the node's whole life:
// start, wait and reap happen on that thread, which therefore lives as long as the node.
// The thread is blocked in waitid meanwhile, as supervise's would be anyway.
//
// Only the node process itself is covered: processes a node starts in turn are not (they
// are killed with the node's process group on a normal stop, but not on a daemon crash).

// parentDeathSignal is the SysProcAttr.Pdeathsig of spawned nodes (0: none).
func (d *Daemon) parentDeathSignal() syscall.Signal {
	if d.cfg.NodeParentDeathSignal {
		return syscall.SIGKILL
	}
	return 0
}

// spawnLocked starts a node from a goroutine locked to its OS thread and supervises it
// there until it exits. It returns once the start was attempted, as spawn does, so nodes
// still start one after the other.
func (d *Daemon) spawnLocked(n *localNode) {
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread() // the node is reaped: the thread may be reused
		cmd, logf, ok := d.spawn(n)
		close(started)
		if ok {
			d.supervise(n, cmd, logf)
		}
	}()
	<-started
}
