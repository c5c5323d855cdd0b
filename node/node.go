package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/doractl/doractl/proto"
)

const (
	// DefaultDynamicAddr is where InitDynamic finds the local daemon when
	// DORACTL_DAEMON_ADDR is not set: the daemon's node listener (proto.DefaultNodePort).
	DefaultDynamicAddr = "127.0.0.1:53291"
	// registerTimeout bounds the registration when ctx has no deadline.
	registerTimeout = 10 * time.Second
	// closeTimeout bounds the CloseOutputs request of Close.
	closeTimeout = 2 * time.Second
)

// Node is a node program's link to its daemon.
type Node struct {
	conn     *proto.Conn
	df, id   string
	inputs   []string
	outputs  map[string]bool
	outList  []string
	queue    *eventQueue
	events   chan Event
	stop     chan struct{} // closed by Close: the feeder gives up
	ready    chan struct{} // closed once the inputs are known
	mu       sync.Mutex
	open     map[string]bool // inputs not closed yet
	closed   bool
	closeErr error
}

// Init connects a node spawned by a daemon, from the environment the daemon set:
// DORACTL_DAEMON_ADDR ("unix:/path" or "host:port"), DORACTL_DATAFLOW_ID,
// DORACTL_NODE_ID and DORACTL_NODE_TOKEN.
func Init(ctx context.Context) (*Node, error) {
	addr := os.Getenv(proto.EnvDaemonAddr)
	id := os.Getenv(proto.EnvNodeID)
	if addr == "" || id == "" {
		return nil, fmt.Errorf("node init: %s and %s are not set: was this node started by a doractl daemon? (for a dynamic node use InitDynamic)", proto.EnvDaemonAddr, proto.EnvNodeID)
	}
	return connect(ctx, addr, proto.NodeRegisterRequest{
		DataflowID: os.Getenv(proto.EnvDataflowID),
		NodeID:     id,
		Token:      os.Getenv(proto.EnvNodeToken),
	})
}

// InitDynamic connects a dynamic node by its id to the local daemon's node listener:
// DORACTL_DAEMON_ADDR if set, else 127.0.0.1:53291.
func InitDynamic(ctx context.Context, id string) (*Node, error) {
	addr := os.Getenv(proto.EnvDaemonAddr)
	if addr == "" {
		addr = DefaultDynamicAddr
	}
	return InitDynamicAt(ctx, addr, id)
}

// InitDynamicAt connects a dynamic node by its id to the daemon node listener at addr
// ("host:port" or "unix:/path").
func InitDynamicAt(ctx context.Context, addr, id string) (*Node, error) {
	if id == "" {
		return nil, errors.New("node init: empty node id")
	}
	return connect(ctx, addr, proto.NodeRegisterRequest{NodeID: id})
}

// connect dials the daemon and registers.
func connect(ctx context.Context, addr string, req proto.NodeRegisterRequest) (*Node, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, registerTimeout)
		defer cancel()
	}
	network, address := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", p
	}
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("node %q: connect to daemon at %s: %w", req.NodeID, addr, err)
	}
	n := &Node{
		queue:   newEventQueue(),
		events:  make(chan Event),
		stop:    make(chan struct{}),
		ready:   make(chan struct{}),
		outputs: map[string]bool{},
		open:    map[string]bool{},
	}
	n.conn = proto.NewConn(nc, proto.Options{
		OnEvent: n.onEvent,
		OnClose: func(error) { n.queue.close() },
	})
	go n.feed()
	var reply proto.NodeRegisterReply
	if err := n.conn.Request(ctx, proto.TypeNodeRegister, &req, &reply); err != nil {
		_ = n.conn.Close()
		close(n.stop)
		return nil, fmt.Errorf("node %q: register with daemon at %s: %w", req.NodeID, addr, err)
	}
	n.df, n.id = reply.DataflowID, reply.NodeID
	n.inputs = append([]string(nil), reply.Inputs...)
	n.outList = append([]string(nil), reply.Outputs...)
	for _, o := range reply.Outputs {
		n.outputs[o] = true
	}
	n.mu.Lock()
	for _, in := range reply.Inputs {
		n.open[in] = true
	}
	n.mu.Unlock()
	close(n.ready)
	return n, nil
}

// onEvent runs on the link's read loop: decode and queue, never block.
func (n *Node) onEvent(typ string, body proto.Body) {
	switch typ {
	case proto.TypeInput:
		var in proto.Input
		if err := body.Decode(&in); err != nil {
			return
		}
		n.queue.push(Event{Type: EventInput, ID: in.ID, Data: in.Data, Metadata: in.Metadata, Dropped: in.Dropped})
	case proto.TypeInputClosed:
		var c proto.InputClosed
		if err := body.Decode(&c); err != nil {
			return
		}
		n.queue.push(Event{Type: EventInputClosed, ID: c.ID})
	case proto.TypeNodeStop:
		var s proto.Stop
		_ = body.Decode(&s)
		n.queue.push(Event{Type: EventStop, Reason: s.Reason})
	}
}

// feed moves queued events to the Events channel, adding AllInputsClosed after the last
// InputClosed, and closes the channel when the link has closed and the queue is drained.
func (n *Node) feed() {
	defer close(n.events)
	select {
	case <-n.ready:
	case <-n.stop:
		return
	}
	for {
		ev, ok, done := n.queue.pop()
		if done {
			return
		}
		if !ok {
			select {
			case <-n.queue.wake:
				continue
			case <-n.stop:
				return
			}
		}
		if !n.deliver(ev) {
			return
		}
		if ev.Type == EventInputClosed && n.inputClosed(ev.ID) {
			if !n.deliver(Event{Type: EventAllInputsClosed}) {
				return
			}
		}
	}
}

func (n *Node) deliver(ev Event) bool {
	select {
	case n.events <- ev:
		return true
	case <-n.stop:
		return false
	}
}

// inputClosed records a closed input and reports whether it was the last open one.
func (n *Node) inputClosed(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.open[id] {
		return false
	}
	delete(n.open, id)
	return len(n.open) == 0
}

// Events delivers the node's events. It closes when the link to the daemon closes (after
// the events already received), or after Close.
func (n *Node) Events() <-chan Event { return n.events }

// ID is the node's id in the dataflow.
func (n *Node) ID() string { return n.id }

// DataflowID is the id of the dataflow the node belongs to.
func (n *Node) DataflowID() string { return n.df }

// Inputs are the node's input ids.
func (n *Node) Inputs() []string { return append([]string(nil), n.inputs...) }

// Outputs are the node's declared outputs.
func (n *Node) Outputs() []string { return append([]string(nil), n.outList...) }

// Send publishes data on one of the node's declared outputs.
func (n *Node) Send(output string, data []byte) error {
	return n.SendWithMetadata(output, data, nil)
}

// SendWithMetadata publishes data with metadata parameters on a declared output.
func (n *Node) SendWithMetadata(output string, data []byte, params map[string]string) error {
	if !n.outputs[output] {
		return fmt.Errorf("node %q: output %q is not declared (outputs: %s)", n.id, output, strings.Join(n.outList, ", "))
	}
	msg := &proto.Output{
		Output:   output,
		Data:     data,
		Metadata: proto.Metadata{Timestamp: time.Now().UnixNano(), Parameters: params},
	}
	if err := n.conn.Notify(proto.TypeOutput, msg); err != nil {
		return fmt.Errorf("node %q: send on %q: %w", n.id, output, err)
	}
	return nil
}

// CloseOutputs tells the daemon that nothing more will be sent on these outputs (all of
// them when none are given): their subscribers get InputClosed.
func (n *Node) CloseOutputs(ctx context.Context, outputs ...string) error {
	if err := n.conn.Request(ctx, proto.TypeCloseOutputs, &proto.CloseOutputs{Outputs: outputs}, nil); err != nil {
		return fmt.Errorf("node %q: close outputs: %w", n.id, err)
	}
	return nil
}

// Close tells the daemon the node's outputs are closed and closes the link. The Events
// channel closes too. It is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return n.closeErr
	}
	n.closed = true
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	err := n.CloseOutputs(ctx)
	cancel()
	if errors.Is(err, proto.ErrClosed) {
		err = nil // the daemon is gone already: nothing to tell it
	}
	_ = n.conn.Close()
	close(n.stop)
	n.mu.Lock()
	n.closeErr = err
	n.mu.Unlock()
	return err
}
