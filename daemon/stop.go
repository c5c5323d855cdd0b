package daemon

import (
	"syscall"
	"time"

	"github.com/doractl/doractl/proto"
)

// Outcomes of nodes the daemon ends on purpose.
const (
	outcomeForced        = "killed (forced)"
	outcomeFenced        = "killed (dataflow fenced by the coordinator)"
	outcomeDynamicKilled = "killed after grace (dynamic node did not disconnect)"
	outcomeNeverConn     = "dynamic, never connected"
)

// stopPlan is how one stop proceeds.
type stopPlan struct {
	grace     time.Duration // Stop event, then SIGTERM after grace
	killAfter time.Duration // then SIGKILL after killAfter more
	force     bool          // SIGKILL at once
	reason    string        // outcome text of a forced kill
}

// planFor turns a StopRequest into a plan, filling in the defaults.
func (d *Daemon) planFor(req *proto.StopRequest) stopPlan {
	p := stopPlan{grace: req.Grace, killAfter: req.KillAfter, force: req.Force, reason: outcomeForced}
	if p.grace <= 0 {
		p.grace = d.cfg.DefaultGrace
	}
	if p.killAfter <= 0 {
		p.killAfter = d.cfg.killWindow(p.grace)
	}
	return p
}

// stopDataflow starts stopping every node of a dataflow and returns at once: each node's
// outcome is reported when it happens, driven by timers, never by a sleeping goroutine.
func (d *Daemon) stopDataflow(df *dataflow, p stopPlan) {
	df.mu.Lock()
	if df.stopping && !p.force {
		df.mu.Unlock()
		return // already stopping: the first stop's deadlines stand
	}
	df.stopping = true
	if p.force {
		df.forced = true
	}
	var gone []*localNode
	for _, id := range df.order {
		n := df.nodes[id]
		if n.final {
			continue
		}
		if p.force {
			if d.killNow(n, p.reason) {
				gone = append(gone, n)
			}
			continue
		}
		if d.stopNode(n, p) {
			gone = append(gone, n)
		}
	}
	df.mu.Unlock()
	for _, n := range gone {
		d.nodeGone(n)
	}
	d.log.Info("stopping dataflow", "dataflow", df.id, "grace", p.grace, "kill_after", p.killAfter, "force", p.force)
}

// stopNode starts the cooperative stop of one node. Call with df.mu held. It reports
// whether the node ended right away.
func (d *Daemon) stopNode(n *localNode, p stopPlan) bool {
	if n.stopAt.IsZero() {
		n.stopAt = time.Now()
	}
	if n.dynamic && n.link == nil {
		d.finish(n, proto.NodeNeverConnected, outcomeNeverConn, 0, "")
		return true
	}
	if n.link != nil {
		sendStop(n.link, "dataflow stopped")
	}
	df := n.df
	if n.dynamic {
		time.AfterFunc(p.grace+p.killAfter, func() {
			df.mu.Lock()
			link := n.link
			if n.final || link == nil {
				df.mu.Unlock()
				return
			}
			n.killOutcome = outcomeDynamicKilled
			df.mu.Unlock()
			d.log.Warn("dynamic node did not disconnect after grace, closing its link", "dataflow", df.id, "node", n.spec.ID)
			_ = link.Close() // the link's close handler records the outcome
		})
		return false
	}
	time.AfterFunc(p.grace, func() { d.signalAfterGrace(n, syscall.SIGTERM) })
	time.AfterFunc(p.grace+p.killAfter, func() { d.signalAfterGrace(n, syscall.SIGKILL) })
	return false
}

// signalAfterGrace signals a still running node's process group when its grace is over.
func (d *Daemon) signalAfterGrace(n *localNode, sig syscall.Signal) {
	df := n.df
	df.mu.Lock()
	if n.final || n.pid <= 0 {
		df.mu.Unlock()
		return
	}
	if sig == syscall.SIGTERM {
		n.termSent = true
	} else {
		n.killSent = true
	}
	pid := n.pid
	df.mu.Unlock()
	d.log.Info("grace over, signalling node", "dataflow", df.id, "node", n.spec.ID, "pid", pid, "signal", sig)
	if err := killGroup(pid, sig); err != nil {
		d.log.Warn("signal node process group", "pid", pid, "error", err)
	}
}

// killNow ends a node at once, without grace (force stop, fence). Call with df.mu held.
// It reports whether the node ended right away.
func (d *Daemon) killNow(n *localNode, reason string) bool {
	if n.final {
		return false
	}
	if n.killOutcome == "" {
		n.killOutcome = reason
	}
	switch {
	case n.starting:
		return false // startNode kills it as soon as it has a pid
	case n.pid > 0:
		if err := killGroup(n.pid, syscall.SIGKILL); err != nil {
			d.log.Warn("kill node process group", "pid", n.pid, "error", err)
		}
		return false // supervise records the outcome when the process is reaped
	case n.link != nil:
		link := n.link
		go func() { _ = link.Close() }() // the close handler records the outcome
		return false
	case n.dynamic:
		d.finish(n, proto.NodeNeverConnected, outcomeNeverConn, 0, "")
		return true
	default:
		// Not started yet: it never will be.
		d.finish(n, proto.NodeKilled, reason, 0, "")
		return true
	}
}

// killDataflows fences dataflows: every node is killed at once.
func (d *Daemon) killDataflows(ids []string, reason string) {
	for _, id := range ids {
		if df := d.dataflow(id); df != nil {
			d.stopDataflow(df, stopPlan{force: true, reason: reason})
		}
	}
}

// killNodes fences single nodes (their dataflow goes on elsewhere): each is killed at
// once.
func (d *Daemon) killNodes(nodes []proto.RunningNode, reason string) {
	for _, rn := range nodes {
		df := d.dataflow(rn.DataflowID)
		if df == nil {
			continue
		}
		df.mu.Lock()
		n := df.nodes[rn.NodeID]
		gone := n != nil && d.killNow(n, reason)
		df.mu.Unlock()
		if gone {
			d.nodeGone(n)
		}
	}
}

// Force kills every node of every dataflow at once (SIGKILL to their process groups),
// skipping what is left of any grace period. The CLI calls it (through Config.ForceCtx)
// on a second interrupt. It returns at once; outcomes are reported as usual.
func (d *Daemon) Force() {
	for _, df := range d.allDataflows() {
		d.stopDataflow(df, stopPlan{force: true, reason: outcomeForced})
	}
}

// sendStop sends the Stop event without waiting on the node.
func sendStop(link interface {
	Notify(string, any) error
}, reason string) {
	go func() { _ = link.Notify(proto.TypeNodeStop, &proto.Stop{Reason: reason}) }()
}
