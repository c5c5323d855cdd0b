package daemon

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/doractl/doractl/proto"
)

// localNode is one node of a dataflow on this daemon. Its mutable fields are guarded by the
// dataflow's mutex.
type localNode struct {
	df      *dataflow
	spec    proto.NodeSpec
	dynamic bool
	token   string // proves a spawned node is the process we started
	logPath string

	status   string
	outcome  string
	exitCode int
	signal   string
	pid      int
	cmd      *exec.Cmd
	logFile  *os.File
	link     *proto.Conn
	starting bool // its process is being started
	linked   bool // a program registered as this node once
	closeAll bool // the node closed all its outputs (a clean end for a dynamic node)

	stopAt      time.Time // when a stop was requested (zero: none)
	termSent    bool      // we sent SIGTERM to its group
	killSent    bool      // we sent SIGKILL to its group after the grace
	killOutcome string    // set when we end it on purpose without a grace (force, fence)

	final bool
	done  chan struct{} // closed once the node has an outcome
	last  proto.NodeStatus
}

// dataflow is this daemon's share of one dataflow.
type dataflow struct {
	id, name string
	router   *router
	ctx      context.Context // ends with the dataflow: timers
	cancel   context.CancelFunc

	mu       sync.Mutex
	nodes    map[string]*localNode
	order    []string
	stopping bool
	forced   bool
	endedAt  time.Time
}

// newDataflow builds the records of a spawn request; nothing is started yet.
func (d *Daemon) newDataflow(req *proto.SpawnRequest) *dataflow {
	ctx, cancel := context.WithCancel(d.bg)
	df := &dataflow{
		id:     req.DataflowID,
		name:   req.Name,
		ctx:    ctx,
		cancel: cancel,
		nodes:  map[string]*localNode{},
		router: newRouter(req.DataflowID, req.Nodes, req.Placement, d.cfg.Name, d.remoteSink(), d.log.With("dataflow", req.DataflowID)),
	}
	for _, s := range req.Nodes {
		n := &localNode{
			df:      df,
			spec:    s,
			dynamic: s.Path == proto.DynamicNodeProtocol,
			status:  proto.NodePending,
			logPath: d.logPath(req.DataflowID, s.ID),
			done:    make(chan struct{}),
		}
		if !n.dynamic {
			n.token = newToken()
		}
		df.nodes[s.ID] = n
		df.order = append(df.order, s.ID)
	}
	return df
}

// list returns the nodes in spawn order.
func (df *dataflow) list() []*localNode {
	df.mu.Lock()
	defer df.mu.Unlock()
	out := make([]*localNode, 0, len(df.order))
	for _, id := range df.order {
		out = append(out, df.nodes[id])
	}
	return out
}

// setStatus records and reports a non-final status. Call with df.mu held.
func (d *Daemon) setStatus(n *localNode, status string) {
	if n.final {
		return
	}
	n.status = status
	n.last = proto.NodeStatus{
		DataflowID: n.df.id, NodeID: n.spec.ID, Status: status, PID: n.pid, Time: time.Now(),
	}
	d.out.push(n.last)
}

// finish records and reports a node's outcome, once. Call with df.mu held. It reports
// whether this call was the one that finished the node.
func (d *Daemon) finish(n *localNode, status, outcome string, code int, sig string) bool {
	if n.final {
		return false
	}
	n.final = true
	n.status, n.outcome, n.exitCode, n.signal = status, outcome, code, sig
	n.last = proto.NodeStatus{
		DataflowID: n.df.id, NodeID: n.spec.ID, Status: status, Outcome: outcome,
		ExitCode: code, Signal: sig, PID: n.pid, Time: time.Now(),
	}
	d.out.push(n.last) // before done: whoever waits on done may flush the outbox next
	close(n.done)
	d.log.Info("node ended", "dataflow", n.df.id, "node", n.spec.ID, "status", status, "outcome", outcome)
	if n.pid > 0 {
		d.pids.remove(n.pid)
	}
	df := n.df
	for _, other := range df.nodes {
		if !other.final {
			return true
		}
	}
	df.endedAt = time.Now()
	df.cancel()
	go d.dataflowEnded(df)
	return true
}

// ended reports whether every node of the dataflow has an outcome.
func (df *dataflow) ended() bool {
	df.mu.Lock()
	defer df.mu.Unlock()
	return !df.endedAt.IsZero()
}

// statuses returns the latest status of every node that has reported one.
func (df *dataflow) statuses() []proto.NodeStatus {
	df.mu.Lock()
	defer df.mu.Unlock()
	var out []proto.NodeStatus
	for _, id := range df.order {
		if n := df.nodes[id]; n.last.Status != "" {
			out = append(out, n.last)
		}
	}
	return out
}

// waitEnded waits until every node has an outcome or ctx is done.
func (df *dataflow) waitEnded(ctx context.Context) bool {
	for _, n := range df.list() {
		select {
		case <-n.done:
		case <-ctx.Done():
			return false
		}
	}
	return true
}
