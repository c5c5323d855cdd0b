package daemon

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/proto"
)

// maxPendingStatus bounds the statuses kept while the coordinator is unreachable. Only the
// latest status of each node is kept, so this is a number of nodes.
const maxPendingStatus = 10000

// statusKey names a node across dataflows.
type statusKey struct{ df, node string }

// outbox sends node status events to the coordinator in order, from its own goroutine, so
// that nobody reporting a status ever waits on the network. While there is no link the
// pending statuses are kept (latest per node) and sent once a new session is registered.
type outbox struct {
	log hclog.Logger

	mu      sync.Mutex
	order   []statusKey
	pending map[statusKey]proto.NodeStatus
	conn    *proto.Conn
	sending bool // run is writing a status it took
	wake    chan struct{}
	idle    chan struct{} // closed and replaced whenever the queue becomes empty
}

func newOutbox(log hclog.Logger) *outbox {
	return &outbox{log: log, pending: map[statusKey]proto.NodeStatus{}, wake: make(chan struct{}, 1), idle: make(chan struct{})}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// push queues a status; a status of the same node that was not sent yet is replaced.
func (o *outbox) push(st proto.NodeStatus) {
	k := statusKey{st.DataflowID, st.NodeID}
	o.mu.Lock()
	if _, ok := o.pending[k]; !ok {
		if len(o.order) >= maxPendingStatus {
			old := o.order[0]
			o.order = o.order[1:]
			delete(o.pending, old)
			o.log.Warn("status queue full, oldest status dropped", "dataflow", old.df, "node", old.node)
		}
		o.order = append(o.order, k)
	}
	o.pending[k] = st
	o.mu.Unlock()
	o.signal()
}

// requeue puts back a status whose send failed, unless a newer one is pending.
func (o *outbox) requeue(st proto.NodeStatus) {
	k := statusKey{st.DataflowID, st.NodeID}
	o.mu.Lock()
	if _, ok := o.pending[k]; !ok {
		o.order = append([]statusKey{k}, o.order...)
		o.pending[k] = st
	}
	o.mu.Unlock()
}

// attach makes conn the link statuses go to; nil detaches.
func (o *outbox) attach(conn *proto.Conn) {
	o.mu.Lock()
	o.conn = conn
	o.mu.Unlock()
	o.signal()
}

// next takes the first pending status if there is a link to send it on.
func (o *outbox) next() (proto.NodeStatus, *proto.Conn, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sending = false
	if o.conn == nil || len(o.order) == 0 {
		if len(o.order) == 0 {
			close(o.idle)
			o.idle = make(chan struct{})
		}
		return proto.NodeStatus{}, nil, false
	}
	k := o.order[0]
	o.order = o.order[1:]
	st := o.pending[k]
	delete(o.pending, k)
	o.sending = true
	return st, o.conn, true
}

// run sends statuses until ctx is done.
func (o *outbox) run(ctx context.Context) {
	for {
		st, conn, ok := o.next()
		if !ok {
			select {
			case <-o.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if err := conn.Notify(proto.TypeNodeStatus, &st); err != nil {
			o.log.Debug("status not sent, kept for the next session", "dataflow", st.DataflowID, "node", st.NodeID, "error", err)
			o.requeue(st)
			o.mu.Lock()
			if o.conn == conn {
				o.conn = nil // the session loop attaches the next one
			}
			o.mu.Unlock()
		}
	}
}

// flush waits until every pending status was handed to the link, or ctx is done.
func (o *outbox) flush(ctx context.Context) bool {
	for {
		o.mu.Lock()
		empty := len(o.order) == 0 && !o.sending
		idle := o.idle
		o.mu.Unlock()
		if empty {
			return true
		}
		o.signal()
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}
