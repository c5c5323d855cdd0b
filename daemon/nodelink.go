package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/doractl/doractl/proto"
)

const (
	// nodeWriteTimeout bounds one write to a node link. A node that reads nothing for this
	// long loses its link; until then only its own sender goroutine waits, nothing else.
	nodeWriteTimeout = 30 * time.Second
	// nodeRegisterWait closes links that have not registered a node within this time.
	nodeRegisterWait = 30 * time.Second
)

// serveNodes accepts node links on ln until it is closed.
func (d *Daemon) serveNodes(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || d.bg.Err() != nil {
				return
			}
			d.log.Warn("accept node link", "addr", ln.Addr(), "error", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-d.bg.Done():
				return
			}
			continue
		}
		d.newNodeLink(nc)
	}
}

// nodeLink is one node program's connection to the daemon.
type nodeLink struct {
	d     *Daemon
	conn  *proto.Conn
	ready chan struct{} // closed once conn is set

	mu sync.Mutex
	n  *localNode // set by a successful registration
}

func (d *Daemon) newNodeLink(nc net.Conn) {
	l := &nodeLink{d: d, ready: make(chan struct{})}
	l.conn = proto.NewConn(nc, proto.Options{
		WriteTimeout: nodeWriteTimeout,
		OnRequest:    l.onRequest,
		OnEvent:      l.onEvent,
		OnClose:      l.onClose,
		Logger:       d.log.Named("node-link"),
	})
	close(l.ready)
	time.AfterFunc(nodeRegisterWait, func() {
		if l.node() == nil {
			_ = l.conn.Close()
		}
	})
}

func (l *nodeLink) node() *localNode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *nodeLink) onRequest(ctx context.Context, typ string, body proto.Body) (any, error) {
	<-l.ready
	switch typ {
	case proto.TypeNodeRegister:
		var req proto.NodeRegisterRequest
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("node register: %w", err)
		}
		return l.register(&req)
	case proto.TypeCloseOutputs:
		n := l.node()
		if n == nil {
			return nil, errors.New("close outputs: node not registered")
		}
		var req proto.CloseOutputs
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("close outputs: %w", err)
		}
		n.df.router.closeOutputs(n.spec.ID, req.Outputs)
		all := len(req.Outputs) == 0
		if !all {
			all = true
			for _, o := range n.spec.Outputs {
				all = all && contains(req.Outputs, o)
			}
		}
		if all {
			n.df.mu.Lock()
			n.closeAll = true
			n.df.mu.Unlock()
		}
		return &proto.Ack{OK: true}, nil
	}
	return nil, fmt.Errorf("unknown node request %q", typ)
}

func (l *nodeLink) onEvent(typ string, body proto.Body) {
	n := l.node()
	if n == nil {
		l.d.log.Debug("event from unregistered node link dropped", "type", typ)
		return
	}
	if typ != proto.TypeOutput {
		l.d.log.Debug("unknown node event dropped", "type", typ, "node", n.spec.ID)
		return
	}
	var out proto.Output
	if err := body.Decode(&out); err != nil {
		l.d.log.Warn("bad output event", "dataflow", n.df.id, "node", n.spec.ID, "error", err)
		return
	}
	n.df.router.publish(n.spec.ID, out.Output, out.Data, out.Metadata)
}

// register binds the link to the node it names: a spawned node by dataflow, id and token,
// a dynamic node by id alone.
func (l *nodeLink) register(req *proto.NodeRegisterRequest) (*proto.NodeRegisterReply, error) {
	d := l.d
	n, err := d.findNode(req)
	if err != nil {
		return nil, err
	}
	df := n.df
	df.mu.Lock()
	switch {
	case n.final:
		df.mu.Unlock()
		return nil, fmt.Errorf("node %q of dataflow %s has already ended (%s)", n.spec.ID, df.id, n.status)
	case n.linked:
		df.mu.Unlock()
		return nil, fmt.Errorf("node %q of dataflow %s is already connected", n.spec.ID, df.id)
	case n.killOutcome != "":
		df.mu.Unlock()
		return nil, fmt.Errorf("node %q of dataflow %s is being killed", n.spec.ID, df.id)
	}
	n.link, n.linked = l.conn, true
	if n.dynamic {
		d.setStatus(n, proto.NodeRunning)
	}
	stop := !n.stopAt.IsZero()
	df.mu.Unlock()

	l.mu.Lock()
	l.n = n
	l.mu.Unlock()
	df.router.attach(n.spec.ID, l.conn, l.conn.Done())
	if stop {
		sendStop(l.conn, "dataflow stopped")
	}
	d.log.Info("node connected", "dataflow", df.id, "node", n.spec.ID, "dynamic", n.dynamic)
	inputs := make([]string, 0, len(n.spec.Inputs))
	for _, in := range n.spec.Inputs {
		inputs = append(inputs, in.ID)
	}
	return &proto.NodeRegisterReply{
		DataflowID: df.id, NodeID: n.spec.ID, Inputs: inputs, Outputs: append([]string(nil), n.spec.Outputs...),
	}, nil
}

// findNode finds the node a registration names.
func (d *Daemon) findNode(req *proto.NodeRegisterRequest) (*localNode, error) {
	if req.NodeID == "" {
		return nil, errors.New("node register: no node id")
	}
	if req.Token != "" {
		df := d.dataflow(req.DataflowID)
		if df == nil {
			return nil, fmt.Errorf("node register: unknown dataflow %q", req.DataflowID)
		}
		df.mu.Lock()
		n := df.nodes[req.NodeID]
		df.mu.Unlock()
		if n == nil {
			return nil, fmt.Errorf("node register: dataflow %s has no node %q", req.DataflowID, req.NodeID)
		}
		if n.dynamic || subtle.ConstantTimeCompare([]byte(n.token), []byte(req.Token)) != 1 {
			return nil, fmt.Errorf("node register: wrong token for node %q of dataflow %s", req.NodeID, req.DataflowID)
		}
		return n, nil
	}
	var found []*localNode
	var why []string // what became of the node in dataflows where it is not waiting
	for _, df := range d.allDataflows() {
		if req.DataflowID != "" && df.id != req.DataflowID {
			continue
		}
		df.mu.Lock()
		if n := df.nodes[req.NodeID]; n != nil && n.dynamic {
			switch {
			case !n.final && !n.linked:
				found = append(found, n)
			case n.final:
				why = append(why, fmt.Sprintf("it already ran in dataflow %s and ended", df.id))
			default:
				why = append(why, fmt.Sprintf("it is already connected in dataflow %s", df.id))
			}
		}
		df.mu.Unlock()
	}
	switch len(found) {
	case 0:
		if len(why) > 0 {
			return nil, fmt.Errorf("no dynamic node %q is waiting on daemon %s: %s (a dynamic node connects once per dataflow: start the dataflow again)",
				req.NodeID, d.cfg.Name, strings.Join(why, "; "))
		}
		return nil, fmt.Errorf("no dynamic node %q is waiting on daemon %s", req.NodeID, d.cfg.Name)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, n := range found {
		ids[i] = n.df.id
	}
	sort.Strings(ids)
	return nil, fmt.Errorf("dynamic node %q is waiting in several dataflows (%s): give the dataflow id", req.NodeID, strings.Join(ids, ", "))
}

// onClose ends the node's part in routing and, for a dynamic node, records its outcome.
func (l *nodeLink) onClose(err error) {
	<-l.ready
	n := l.node()
	if n == nil {
		return
	}
	d, df := l.d, n.df
	df.router.closeOutputs(n.spec.ID, nil)
	df.router.detach(n.spec.ID)
	df.mu.Lock()
	if n.link == l.conn {
		n.link = nil
	}
	if n.dynamic && !n.final {
		switch {
		case n.killOutcome != "":
			d.finish(n, proto.NodeKilled, n.killOutcome, 0, "")
		case !n.stopAt.IsZero():
			d.finish(n, proto.NodeStopped, "stopped", 0, "")
		case n.closeAll:
			d.finish(n, proto.NodeFinished, "finished", 0, "")
		default:
			d.finish(n, proto.NodeFailed, "failed (dynamic node disconnected)", 0, "")
		}
	}
	df.mu.Unlock()
	d.log.Info("node link closed", "dataflow", df.id, "node", n.spec.ID, "reason", err)
}

// newToken returns a random secret for a spawned node.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
