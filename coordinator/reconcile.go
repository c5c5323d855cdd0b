package coordinator

import (
	"fmt"
	"sort"

	"github.com/doractl/doractl/proto"
)

// reconcileDaemon matches what a (re)registering daemon runs against the registry
// (DESIGN invariants 6 and 7):
//
//   - a node the registry expects there and the daemon runs is adopted (running again if
//     its outcome was only an unreported guess, see killNodes below);
//   - a node the registry expects there that the daemon does not run has ended while
//     the link was down. After a restart (new boot epoch) it died with the daemon: lost
//     (stopped if a stop was asked) at once. Otherwise it is returned in missing: the
//     daemon resends the last status of every node right after registering, and what
//     is still without an outcome after a short while is resolved by resolveMissing;
//   - a dataflow the daemon runs that is unknown, finished or failed here is returned in
//     kill (fencing);
//   - a node the daemon runs whose outcome is recorded here (lost when the daemon was
//     confirmed dead, or any reported outcome) while the rest of its dataflow still runs
//     is returned in killNodes (fencing one node): the recorded outcome stands. Only an
//     unreported guess (the node was missing at an earlier reconnect) is adopted back;
//   - a dataflow with a recorded stop intent that still has nodes there is returned in
//     stop, so that a stop made while the daemon was away is applied now.
func (r *registry) reconcileDaemon(daemon string, running []proto.RunningNode, restarted bool) (kill []string, killNodes []proto.RunningNode, stop []string, missing []nodeRef) {
	byDF := map[string]map[string]proto.RunningNode{}
	for _, rn := range running {
		if byDF[rn.DataflowID] == nil {
			byDF[rn.DataflowID] = map[string]proto.RunningNode{}
		}
		byDF[rn.DataflowID][rn.NodeID] = rn
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	killSet := map[string]bool{}
	for id := range byDF {
		if d, ok := r.byID[id]; !ok || d.final() {
			killSet[id] = true
		}
	}
	for _, d := range r.byID {
		if d.final() {
			continue
		}
		changed, runsHere := false, false
		for _, n := range d.Nodes {
			if n.Daemon != daemon {
				continue
			}
			rn, isRunning := byDF[d.ID][n.ID]
			switch {
			case isRunning && (!n.final() || n.Inferred && n.Unreported):
				if n.final() || n.Status == proto.NodePending {
					n.Status, n.Outcome, n.Since = proto.NodeRunning, "", now
				}
				n.Inferred, n.Unreported = false, false
				if rn.PID != 0 {
					n.PID = rn.PID
				}
				runsHere, changed = true, true
			case isRunning:
				// Its outcome is recorded (e.g. lost with the daemon's confirmed death):
				// final. Whatever still runs there is fenced; the outcome stays.
				killNodes = append(killNodes, rn)
			case !n.final() && restarted:
				n.Since, n.Inferred, n.Unreported = now, true, true
				if d.Stop != nil {
					n.Status = proto.NodeStopped
					n.Outcome = fmt.Sprintf("stopped (daemon %s restarted before reporting)", daemon)
				} else {
					n.Status = proto.NodeLost
					n.Outcome = fmt.Sprintf("lost (daemon %s restarted)", daemon)
				}
				changed = true
			case !n.final():
				missing = append(missing, nodeRef{dataflow: d.ID, node: n.ID})
			}
		}
		if changed {
			r.changedLocked(d)
		}
		if d.final() && len(byDF[d.ID]) > 0 {
			killSet[d.ID] = true
		} else if runsHere && d.Stop != nil {
			stop = append(stop, d.ID)
		}
	}
	for id := range killSet {
		kill = append(kill, id)
	}
	sort.Strings(kill)
	sort.Strings(stop)
	kept := killNodes[:0]
	for _, rn := range killNodes {
		if !killSet[rn.DataflowID] {
			kept = append(kept, rn)
		}
	}
	killNodes = kept
	sort.Slice(killNodes, func(i, j int) bool {
		if killNodes[i].DataflowID != killNodes[j].DataflowID {
			return killNodes[i].DataflowID < killNodes[j].DataflowID
		}
		return killNodes[i].NodeID < killNodes[j].NodeID
	})
	return kill, killNodes, stop, missing
}

// nodeRef names one node of one dataflow.
type nodeRef struct{ dataflow, node string }

// resolveMissing gives the nodes a reconnected daemon did not run, and has not reported
// an outcome for since, an inferred one: stopped if a stop was asked, else lost.
func (r *registry) resolveMissing(daemon string, missing []nodeRef) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	resolved := 0
	touched := map[*dataflowRec]bool{}
	for _, ref := range missing {
		d, ok := r.byID[ref.dataflow]
		if !ok || d.final() {
			continue
		}
		n := d.node(ref.node)
		if n == nil || n.final() || n.Daemon != daemon {
			continue
		}
		n.Since, n.Inferred, n.Unreported = now, true, true
		if d.Stop != nil {
			n.Status = proto.NodeStopped
			n.Outcome = fmt.Sprintf("stopped (gone when daemon %s reconnected; outcome not reported)", daemon)
		} else {
			n.Status = proto.NodeLost
			n.Outcome = fmt.Sprintf("lost (not running on daemon %s when it reconnected; outcome not reported)", daemon)
		}
		touched[d] = true
		resolved++
	}
	for d := range touched {
		r.changedLocked(d)
	}
	return resolved
}
