package coordinator

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// rawLink dials the daemon port without registering.
func rawLink(t *testing.T, addr string) *proto.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := proto.NewConn(nc, proto.Options{})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitClosed(t *testing.T, c *proto.Conn, within time.Duration, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(within):
		t.Fatalf("%s: link still open after %s", what, within)
	}
}

func TestRegisterHandshake(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RegisterTimeout = 300 * time.Millisecond })
	addr := ts.srv.DaemonAddr()

	silent := rawLink(t, addr)
	waitClosed(t, silent, 3*time.Second, "no register")

	early := rawLink(t, addr)
	if err := early.Notify(proto.TypeNodeStatus, proto.NodeStatus{DataflowID: "x", NodeID: "y", Status: proto.NodeRunning}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, early, 3*time.Second, "event before register")

	wrong := rawLink(t, addr)
	err := wrong.Request(ctxT(t, 3*time.Second), proto.TypeLogs, proto.LogsRequest{}, nil)
	if err == nil || !strings.Contains(err.Error(), "first request must be") {
		t.Errorf("request before register: %v", err)
	}
	waitClosed(t, wrong, 3*time.Second, "request before register")

	if n := len(ts.srv.connected()); n != 0 {
		t.Errorf("%d sessions from links that never registered", n)
	}

	// A daemon that re-registers on a new link replaces its old session.
	f := newFakeDaemon(t, addr, fakeOpts{name: "daemon-a"})
	old := f.link()
	f.reconnect(addr, nil)
	waitClosed(t, old, 3*time.Second, "replaced link")
	if s := ts.srv.session("daemon-a"); s == nil || s.conn.RemoteAddr().String() == "" {
		t.Fatalf("no session after re-register")
	}
	h, err := ts.cl.Health(context.Background())
	if err != nil || h.Daemons != 1 || h.Profile != "" {
		t.Errorf("health %+v %v", h, err)
	}
}

func TestAcceptDaemonPipe(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.DaemonAddr = "" })
	if ts.srv.DaemonAddr() != "" {
		t.Fatalf("daemon addr %q with no listener", ts.srv.DaemonAddr())
	}
	a, b := net.Pipe()
	ts.srv.AcceptDaemon(a)
	c := proto.NewConn(b, proto.Options{})
	defer c.Close()
	var reply proto.RegisterReply
	err := c.Request(ctxT(t, 3*time.Second), proto.TypeRegister, proto.RegisterRequest{Name: "inproc", Machine: "m", Protocol: proto.ProtocolVersion}, &reply)
	if err != nil {
		t.Fatalf("register over a pipe: %v", err)
	}
	ms, err := ts.cl.Members(context.Background())
	if err != nil || len(ms) != 2 || ms[1].Name != "inproc" || ms[1].Status != proto.MemberAlive {
		t.Errorf("members %+v %v", ms, err)
	}
}
