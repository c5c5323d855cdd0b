package coordinator

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/doractl/doractl/proto"
)

// dataflowRec is the coordinator's record of one dataflow. It is persisted as JSON;
// fields without a json name are runtime-only. Guarded by registry.mu.
type dataflowRec struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Descriptor string        `json:"descriptor"`
	Path       string        `json:"path,omitempty"`
	WorkingDir string        `json:"working_dir,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	EndedAt    *time.Time    `json:"ended_at,omitempty"`
	Status     string        `json:"status"`
	Reason     string        `json:"reason,omitempty"`
	StartErr   string        `json:"start_error,omitempty"` // set when the start was aborted
	Stop       *stopIntent   `json:"stop,omitempty"`
	Nodes      []*nodeRec    `json:"nodes"`
	changed    chan struct{} // closed and replaced on every change
}

// stopIntent is a recorded user stop: it survives a coordinator restart and is handed to
// daemons that were away when it was made.
type stopIntent struct {
	At        time.Time     `json:"at"`
	Grace     time.Duration `json:"grace"`
	KillAfter time.Duration `json:"kill_after"`
	Force     bool          `json:"force,omitempty"`
}

// nodeRec is one node of a dataflow and where it runs.
type nodeRec struct {
	ID      string    `json:"id"`
	Machine string    `json:"machine"`
	Daemon  string    `json:"daemon"`
	Status  string    `json:"status"`
	Outcome string    `json:"outcome,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Since   time.Time `json:"since"`
	// Inferred marks a final status the coordinator concluded by itself (daemon
	// restarted, start aborted, node missing at a reconnect): a later report from the
	// daemon may replace it while the dataflow is not final. A node lost with a daemon
	// confirmed dead (or gone) is not inferred: that outcome is final.
	Inferred bool `json:"inferred,omitempty"`
	// Unreported marks an inferred status concluded without evidence: the daemon
	// reconnected without the node and had not reported its end. The daemon's own final
	// report replaces it even when it had made the dataflow final.
	Unreported bool `json:"unreported,omitempty"`
}

func (n *nodeRec) final() bool { return proto.IsFinal(n.Status) }

// final reports whether every node has an outcome.
func (d *dataflowRec) final() bool {
	return d.Status == proto.DataflowFinished || d.Status == proto.DataflowFailed
}

func (d *dataflowRec) node(id string) *nodeRec {
	for _, n := range d.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// notify wakes everything waiting on a change of d.
func (d *dataflowRec) notify() {
	if d.changed != nil {
		close(d.changed)
	}
	d.changed = make(chan struct{})
}

// daemons lists the daemons running nodes of d, sorted; pendingOnly keeps those with
// nodes that have no outcome yet.
func (d *dataflowRec) daemons(pendingOnly bool) []string {
	seen := map[string]bool{}
	for _, n := range d.Nodes {
		if pendingOnly && n.final() {
			continue
		}
		seen[n.Daemon] = true
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// refresh derives the dataflow status from its nodes: running or stopping while any node
// has no outcome; then failed if the start was aborted or any node failed or was lost,
// finished otherwise (finished, stopped, killed after grace, never connected).
func (d *dataflowRec) refresh(now time.Time) {
	allFinal := true
	for _, n := range d.Nodes {
		if !n.final() {
			allFinal = false
		}
	}
	if !allFinal {
		d.Status = proto.DataflowRunning
		if d.Stop != nil {
			d.Status = proto.DataflowStopping
		}
		d.EndedAt = nil
		d.Reason = d.pendingReason()
		return
	}
	if d.EndedAt == nil {
		t := now
		d.EndedAt = &t
	}
	failures := d.failureSummary()
	switch {
	case d.StartErr != "":
		d.Status = proto.DataflowFailed
		d.Reason = "start failed: " + d.StartErr
	case failures != "":
		d.Status = proto.DataflowFailed
		d.Reason = failures
	default:
		d.Status = proto.DataflowFinished
		d.Reason = d.cleanReason()
	}
}

// pendingReason says what is known of a dataflow that still runs: the nodes already
// failed or lost (e.g. with a daemon confirmed dead while the rest runs on), and the
// stop asked.
func (d *dataflowRec) pendingReason() string {
	var parts []string
	if f := d.failureSummary(); f != "" {
		parts = append(parts, f)
	}
	if d.Stop != nil {
		parts = append(parts, "stop requested at "+d.Stop.At.Format(time.TimeOnly))
	}
	return strings.Join(parts, "; ")
}

// cleanReason says how a dataflow that ended cleanly ended. Killed nodes are counted
// per outcome: a kill after the grace is not a kill by fencing.
func (d *dataflowRec) cleanReason() string {
	killed := map[string]int{}
	var outcomes []string
	for _, n := range d.Nodes {
		if n.Status != proto.NodeKilled {
			continue
		}
		o := n.Outcome
		if o == "" || o == "killed" {
			o = "killed after grace"
		}
		if killed[o] == 0 {
			outcomes = append(outcomes, o)
		}
		killed[o]++
	}
	reason := "all nodes finished"
	if d.Stop != nil {
		reason = "stopped by user"
	}
	for _, o := range outcomes {
		reason += fmt.Sprintf(" (%s %s)", plural(killed[o], "node"), o)
	}
	return reason
}

// failureSummary is a one-line description of the failed and lost nodes ("" if none).
func (d *dataflowRec) failureSummary() string {
	var parts []string
	lostBy := map[string][]string{}
	var daemons []string
	for _, n := range d.Nodes {
		switch n.Status {
		case proto.NodeFailed:
			parts = append(parts, fmt.Sprintf("node %q %s", n.ID, n.outcomeText()))
		case proto.NodeLost:
			if _, ok := lostBy[n.Daemon]; !ok {
				daemons = append(daemons, n.Daemon)
			}
			lostBy[n.Daemon] = append(lostBy[n.Daemon], n.Outcome)
		}
	}
	for _, name := range daemons {
		outcomes := lostBy[name]
		parts = append(parts, fmt.Sprintf("%s lost: %s", plural(len(outcomes), "node"), lostCause(name, outcomes[0])))
	}
	return strings.Join(parts, "; ")
}

// lostCause turns "lost (daemon D dead since T: R)" into `daemon "D" confirmed dead at T (R)`.
func lostCause(daemon, outcome string) string {
	inner := strings.TrimSuffix(strings.TrimPrefix(outcome, "lost ("), ")")
	prefix := "daemon " + daemon + " dead since "
	if rest, ok := strings.CutPrefix(inner, prefix); ok {
		if at, reason, ok := strings.Cut(rest, ": "); ok {
			return fmt.Sprintf("daemon %q confirmed dead at %s (%s)", daemon, at, reason)
		}
		return fmt.Sprintf("daemon %q confirmed dead at %s", daemon, rest)
	}
	if inner == "" || inner == outcome {
		return fmt.Sprintf("daemon %q", daemon)
	}
	return inner
}

// outcomeText is the node's outcome, or its status when the daemon gave no text.
func (n *nodeRec) outcomeText() string {
	if n.Outcome != "" {
		return n.Outcome
	}
	return n.Status
}

// defaultOutcome is the outcome text of a final status reported without one.
func defaultOutcome(ns proto.NodeStatus) string {
	switch ns.Status {
	case proto.NodeFailed:
		switch {
		case ns.Signal != "":
			return fmt.Sprintf("failed (signal %s)", ns.Signal)
		default:
			return fmt.Sprintf("failed (exit %d)", ns.ExitCode)
		}
	case proto.NodeKilled:
		return "killed after grace"
	case proto.NodeNeverConnected:
		return "dynamic, never connected"
	case proto.NodeFinished, proto.NodeStopped:
		return ns.Status
	}
	return ""
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// apiView is the API shape of d.
func (d *dataflowRec) apiView() proto.Dataflow {
	out := proto.Dataflow{
		ID:        d.ID,
		Name:      d.Name,
		Status:    d.Status,
		Nodes:     d.apiNodes(),
		StartedAt: d.StartedAt,
		Reason:    d.Reason,
	}
	if d.EndedAt != nil {
		t := *d.EndedAt
		out.EndedAt = &t
	}
	machines := map[string]bool{}
	for _, n := range d.Nodes {
		machines[n.Machine] = true
	}
	for m := range machines {
		out.Machines = append(out.Machines, m)
	}
	sort.Strings(out.Machines)
	return out
}

func (d *dataflowRec) apiNodes() []proto.NodeInfo {
	out := make([]proto.NodeInfo, 0, len(d.Nodes))
	for _, n := range d.Nodes {
		out = append(out, proto.NodeInfo{
			ID:      n.ID,
			Machine: n.Machine,
			Daemon:  n.Daemon,
			Status:  n.Status,
			Outcome: n.Outcome,
			PID:     n.PID,
			Since:   n.Since,
		})
	}
	return out
}
