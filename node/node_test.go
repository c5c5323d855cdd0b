package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// fakeDaemon accepts one node link on a unix socket and records what the node sends.
type fakeDaemon struct {
	ln       net.Listener
	token    string
	conns    chan *proto.Conn
	outputs  chan proto.Output
	closeOut chan proto.CloseOutputs
	closed   chan struct{}
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "node.sock"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{
		ln: ln, token: "secret",
		conns:    make(chan *proto.Conn, 4),
		outputs:  make(chan proto.Output, 100),
		closeOut: make(chan proto.CloseOutputs, 4),
		closed:   make(chan struct{}, 4),
	}
	t.Cleanup(func() { _ = ln.Close() })
	go f.accept()
	return f
}

func (f *fakeDaemon) addr() string { return "unix:" + f.ln.Addr().String() }

func (f *fakeDaemon) accept() {
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		var conn *proto.Conn
		ready := make(chan struct{})
		conn = proto.NewConn(nc, proto.Options{
			OnRequest: func(ctx context.Context, typ string, body proto.Body) (any, error) {
				<-ready
				switch typ {
				case proto.TypeNodeRegister:
					var req proto.NodeRegisterRequest
					if err := body.Decode(&req); err != nil {
						return nil, err
					}
					if req.Token != f.token || (req.NodeID != "n1" && req.NodeID != "dyn") {
						return nil, fmt.Errorf("no node %q with that token", req.NodeID)
					}
					f.conns <- conn
					return &proto.NodeRegisterReply{DataflowID: "df1", NodeID: req.NodeID, Inputs: []string{"a", "b"}, Outputs: []string{"out"}}, nil
				case proto.TypeCloseOutputs:
					var req proto.CloseOutputs
					_ = body.Decode(&req)
					f.closeOut <- req
					return &proto.Ack{OK: true}, nil
				}
				return nil, fmt.Errorf("unexpected %q", typ)
			},
			OnEvent: func(typ string, body proto.Body) {
				var out proto.Output
				if typ == proto.TypeOutput && body.Decode(&out) == nil {
					f.outputs <- out
				}
			},
			OnClose: func(error) { f.closed <- struct{}{} },
		})
		close(ready)
	}
}

func (f *fakeDaemon) link(t *testing.T) *proto.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no node registered")
		return nil
	}
}

func next(t *testing.T, n *Node) Event {
	t.Helper()
	select {
	case ev, ok := <-n.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return Event{}
	}
}

func TestInitFromEnvEventsAndSend(t *testing.T) {
	f := newFakeDaemon(t)
	t.Setenv(proto.EnvDaemonAddr, f.addr())
	t.Setenv(proto.EnvDataflowID, "df1")
	t.Setenv(proto.EnvNodeID, "n1")
	t.Setenv(proto.EnvNodeToken, "secret")
	n, err := Init(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.ID() != "n1" || n.DataflowID() != "df1" || fmt.Sprint(n.Inputs()) != "[a b]" || fmt.Sprint(n.Outputs()) != "[out]" {
		t.Fatalf("node %s/%s inputs %v outputs %v", n.DataflowID(), n.ID(), n.Inputs(), n.Outputs())
	}
	link := f.link(t)
	for _, ev := range []struct {
		typ string
		msg any
	}{
		{proto.TypeInput, &proto.Input{ID: "a", Data: []byte("x"), Metadata: proto.Metadata{Timestamp: 42}}},
		{proto.TypeInputClosed, &proto.InputClosed{ID: "a"}},
		{proto.TypeInput, &proto.Input{ID: "b", Data: []byte("y"), Dropped: 3}},
		{proto.TypeInputClosed, &proto.InputClosed{ID: "b"}},
		{proto.TypeNodeStop, &proto.Stop{Reason: "bye"}},
	} {
		if err := link.Notify(ev.typ, ev.msg); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"Input a x 0", "InputClosed a  0", "Input b y 3", "InputClosed b  0", "AllInputsClosed   0", "Stop   0"}
	for i, w := range want {
		ev := next(t, n)
		if got := fmt.Sprintf("%s %s %s %d", ev.Type, ev.ID, ev.Data, ev.Dropped); got != w {
			t.Fatalf("event %d: %q, want %q", i, got, w)
		}
		if i == 0 && ev.Metadata.Timestamp != 42 {
			t.Fatalf("metadata %+v", ev.Metadata)
		}
		if ev.Type == EventStop && ev.Reason != "bye" {
			t.Fatalf("stop reason %q", ev.Reason)
		}
	}

	if err := n.SendWithMetadata("out", []byte("hello"), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-f.outputs:
		if out.Output != "out" || string(out.Data) != "hello" || out.Metadata.Parameters["k"] != "v" || out.Metadata.Timestamp == 0 {
			t.Fatalf("output %+v", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("output never reached the daemon")
	}
	if err := n.Send("undeclared", nil); err == nil || !strings.Contains(err.Error(), "not declared") {
		t.Fatalf("send on an undeclared output: %v", err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-f.closeOut:
		if len(req.Outputs) != 0 {
			t.Fatalf("close outputs %v, want all", req.Outputs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close the outputs")
	}
	select {
	case <-f.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close the link")
	}
	if _, ok := <-n.Events(); ok {
		t.Fatal("events still open after Close")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestEventsCloseWhenDaemonGoes(t *testing.T) {
	f := newFakeDaemon(t)
	n, err := connect(context.Background(), f.addr(), proto.NodeRegisterRequest{NodeID: "dyn", Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	link := f.link(t)
	for i := 0; i < 3; i++ {
		_ = link.Notify(proto.TypeInput, &proto.Input{ID: "a", Data: []byte{byte(i)}})
	}
	_ = link.Close()
	got := 0
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-n.Events():
			if !ok {
				if got != 3 {
					t.Fatalf("%d inputs before the channel closed, want 3", got)
				}
				if err := n.Close(); err != nil {
					t.Fatalf("Close after the daemon left: %v", err)
				}
				return
			}
			if ev.Type == EventInput {
				got++
			}
		case <-timeout:
			t.Fatal("events did not close with the link")
		}
	}
}

func TestInitErrors(t *testing.T) {
	t.Setenv(proto.EnvDaemonAddr, "")
	t.Setenv(proto.EnvNodeID, "")
	if _, err := Init(context.Background()); err == nil || !strings.Contains(err.Error(), proto.EnvDaemonAddr) {
		t.Fatalf("init without env: %v", err)
	}
	f := newFakeDaemon(t)
	_, err := InitDynamicAt(context.Background(), f.addr(), "unknown")
	var re *proto.RemoteError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("register refused: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, err := InitDynamicAt(context.Background(), addr, "x"); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("no daemon: %v", err)
	}
}

func TestQueueDropsOldestPerInput(t *testing.T) {
	q := newEventQueue()
	for i := 0; i < maxQueuedPerInput+5; i++ {
		q.push(Event{Type: EventInput, ID: "a", Data: []byte{byte(i)}})
	}
	q.push(Event{Type: EventInputClosed, ID: "a"})
	q.close()
	var first Event
	count := 0
	for {
		ev, ok, done := q.pop()
		if done {
			break
		}
		if !ok {
			t.Fatal("queue empty but not done")
		}
		if ev.Type == EventInput {
			if count == 0 {
				first = ev
			}
			count++
		}
	}
	if count != maxQueuedPerInput || first.Data[0] != 5 || first.Dropped != 5 {
		t.Fatalf("kept %d, first %v dropped %d; want %d kept from 5 on", count, first.Data, first.Dropped, maxQueuedPerInput)
	}
}
