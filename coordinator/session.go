package coordinator

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doractl/doractl/proto"
)

// daemonInfo is what the coordinator knows of a daemon from its last registration.
type daemonInfo struct {
	Name         string            `json:"name"`
	Machine      string            `json:"machine"`
	ControlAddr  string            `json:"control_addr"`
	GossipAddr   string            `json:"gossip_addr,omitempty"`
	BootEpoch    int64             `json:"boot_epoch"`
	Version      string            `json:"version,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	RegisteredAt time.Time         `json:"registered_at"`
	// LeftAt is set once the daemon left the cluster (graceful leave or destroy).
	LeftAt *time.Time `json:"left_at,omitempty"`
}

// session is a registered daemon's control link.
type session struct {
	info   daemonInfo
	conn   *proto.Conn
	events *eventQueue
	rtt    atomic.Int64 // last measured round trip, nanoseconds (0 = none yet)
	// leaving is set when the daemon announced its graceful leave on this link.
	leaving atomic.Bool
}

// request sends a request on the daemon's link.
func (s *session) request(ctx context.Context, typ string, req, resp any) error {
	return s.conn.Request(ctx, typ, req, resp)
}

// ping measures the link's round trip and remembers it.
func (s *session) ping(ctx context.Context) (time.Duration, error) {
	rtt, err := s.conn.Ping(ctx)
	if err == nil {
		s.rtt.Store(int64(rtt))
	}
	return rtt, err
}

// eventQueue is an unbounded FIFO of a link's events (node status reports and the leave
// announcement): the link's read loop pushes without ever blocking, one goroutine per
// session applies them in order.
type eventQueue struct {
	mu     sync.Mutex
	items  []queuedEvent
	closed bool
	signal chan struct{}
}

// queuedEvent is a node status, or a leave announcement when leaving is set.
type queuedEvent struct {
	status  proto.NodeStatus
	leaving *proto.Leaving
}

func newEventQueue() *eventQueue { return &eventQueue{signal: make(chan struct{}, 1)} }

func (q *eventQueue) push(ns proto.NodeStatus) { q.add(queuedEvent{status: ns}) }

// pushLeaving queues a leave announcement behind the statuses received before it.
func (q *eventQueue) pushLeaving(lv proto.Leaving) { q.add(queuedEvent{leaving: &lv}) }

func (q *eventQueue) add(ev queuedEvent) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, ev)
	}
	q.mu.Unlock()
	q.wake()
}

// close lets the consumer drain what is queued and return.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run applies queued events with apply and leave until the queue is closed and drained,
// or ctx ends.
func (q *eventQueue) run(ctx context.Context, apply func(proto.NodeStatus), leave func(proto.Leaving)) {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, ev := range items {
			if ev.leaving != nil {
				if leave != nil {
					leave(*ev.leaving)
				}
				continue
			}
			apply(ev.status)
		}
		if closed && len(items) == 0 {
			return
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return
		}
	}
}

// heardEvery throttles the "heard from" signal sent to the failure detector.
const heardEvery = 200 * time.Millisecond

// heardConn wraps a daemon link's socket so that every frame received (pings included)
// tells the failure detector that the daemon is alive.
type heardConn struct {
	net.Conn
	last atomic.Int64
	hook atomic.Pointer[func()]
}

func (c *heardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if h := c.hook.Load(); h != nil {
			now := time.Now().UnixNano()
			if last := c.last.Load(); now-last >= int64(heardEvery) && c.last.CompareAndSwap(last, now) {
				(*h)()
			}
		}
	}
	return n, err
}

func (c *heardConn) setHook(f func()) { c.hook.Store(&f) }
