package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/coordinator"
	"github.com/doractl/doractl/node"
	"github.com/doractl/doractl/proto"
)

// cluster2 is a real coordinator and two real daemons (machines m-a and m-b) in this
// process, each daemon with its own state folder and node socket, without gossip.
type cluster2 struct {
	cl   *client.Client
	a, b *Daemon
	// stopA ends daemon A's Run (after an abrupt Close, it only reaps it).
	stopA context.CancelFunc
}

func startCluster2(t *testing.T) *cluster2 {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.ControlAddr = "127.0.0.1:0"
	cfg.DaemonAddr = "127.0.0.1:0"
	cfg.Gossip = false
	cfg.DataDir = ""
	cfg.Machine = "coord-host"
	cfg.Logger = testLog("coordinator")
	srv, err := coordinator.New(cfg)
	if err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("coordinator did not stop")
		}
	})
	c := &cluster2{cl: client.New(srv.ControlAddr())}
	c.a, c.stopA = startPeerDaemon(t, srv.DaemonAddr(), "daemon-a", "m-a")
	c.b, _ = startPeerDaemon(t, srv.DaemonAddr(), "daemon-b", "m-b")
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		ms, err := c.cl.Members(context.Background())
		if err != nil {
			return err
		}
		alive := 0
		for _, m := range ms {
			if m.Role == "daemon" && m.Status == proto.MemberAlive {
				alive++
			}
		}
		if alive != 2 {
			return fmt.Errorf("%d daemons alive: %+v", alive, ms)
		}
		return nil
	})
	return c
}

func startPeerDaemon(t *testing.T, coord, name, machine string) (*Daemon, context.CancelFunc) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Machine = name, machine
	cfg.CoordinatorAddr = coord
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeListenAddr = ""
	cfg.Gossip = false
	cfg.StateDir = t.TempDir()
	cfg.DefaultGrace = time.Second
	cfg.Logger = testLog(name)
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("daemon %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("daemon %s did not stop", name)
		}
	})
	return d, cancel
}

// spanDF: src on m-a feeds near (m-a) and far (m-b).
func spanDF(nearQueue, farQueue int) string {
	return fmt.Sprintf(`nodes:
  - id: src
    path: dynamic
    deploy:
      machine: m-a
    outputs:
      - data
  - id: near
    path: dynamic
    deploy:
      machine: m-a
    inputs:
      data:
        source: src/data
        queue_size: %d
  - id: far
    path: dynamic
    deploy:
      machine: m-b
    inputs:
      data:
        source: src/data
        queue_size: %d
`, nearQueue, farQueue)
}

func (c *cluster2) start(t *testing.T, yaml string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := c.cl.Start(ctx, proto.APIStartRequest{Name: "span", Descriptor: yaml})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return rep.ID
}

func connectNode(t *testing.T, d *Daemon, id string) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := node.InitDynamicAt(ctx, "unix:"+d.NodeSocket(), id)
	if err != nil {
		t.Fatalf("node %s: %v", id, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// counter reads a node's events in the background.
type counter struct {
	mu        sync.Mutex
	got       int
	last      string
	latencies []time.Duration
	closed    bool
}

func count(n *node.Node) *counter {
	c := &counter{}
	go func() {
		for ev := range n.Events() {
			c.mu.Lock()
			switch ev.Type {
			case node.EventInput:
				c.got++
				c.last = string(ev.Data)
				c.latencies = append(c.latencies, time.Since(time.Unix(0, ev.Metadata.Timestamp)))
			case node.EventInputClosed:
				c.closed = true
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *counter) snapshot() (got int, last string, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got, c.last, c.closed
}

func (c *counter) median() time.Duration {
	c.mu.Lock()
	l := slices.Clone(c.latencies)
	c.mu.Unlock()
	if len(l) == 0 {
		return 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)/2]
}

func TestCrossDaemonOutputReachesLocalAndRemoteConsumers(t *testing.T) {
	c := startCluster2(t)
	c.start(t, spanDF(10, 10))
	src := connectNode(t, c.a, "src")
	near := count(connectNode(t, c.a, "near"))
	far := count(connectNode(t, c.b, "far"))

	// Paced sends: the timestamps give the cross-daemon latency of an idle link.
	const n = 200
	for i := 1; i <= n; i++ {
		if err := src.Send("data", payload(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	want := string(payload(n))
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		ng, nl, _ := near.snapshot()
		fg, fl, _ := far.snapshot()
		if nl != want || fl != want {
			return fmt.Errorf("near %d (last %q), far %d (last %q), want last %q", ng, nl, fg, fl, want)
		}
		return nil
	})
	ng, _, _ := near.snapshot()
	fg, _, _ := far.snapshot()
	t.Logf("received: near %d/%d, far %d/%d; median latency local %s, cross-daemon %s", ng, n, fg, n, near.median(), far.median())
	if fg < n*9/10 {
		t.Errorf("far received %d of %d paced messages", fg, n)
	}
	// One link, one copy per message, whatever the number of remote consumers.
	if st := c.a.links.stats("daemon-b"); st.Sent < uint64(fg) || st.Sent > uint64(n)+1 || !st.Connected {
		t.Errorf("link a->b: %+v for %d messages", st, n)
	}

	// The producer closes its output: both consumers get InputClosed.
	if err := src.CloseOutputs(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		_, _, nc := near.snapshot()
		_, _, fc := far.snapshot()
		if !nc || !fc {
			return fmt.Errorf("input closed: near %v, far %v", nc, fc)
		}
		return nil
	})
}

func TestCrossDaemonInputClosedWhenProducerDaemonDies(t *testing.T) {
	c := startCluster2(t)
	c.start(t, spanDF(10, 10))
	src := connectNode(t, c.a, "src")
	count(connectNode(t, c.a, "near"))
	far := count(connectNode(t, c.b, "far"))
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if err := src.Send("data", []byte("x")); err != nil {
			return err
		}
		if got, _, _ := far.snapshot(); got == 0 {
			return errors.New("far received nothing yet")
		}
		return nil
	})

	// Daemon A goes away at once: listeners and links closed, no goodbye to anyone.
	died := time.Now()
	_ = c.a.ctlLn.Close() // first, as in a crash: the coordinator finds the port refused
	c.a.Close()
	testutil.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		if _, _, closed := far.snapshot(); !closed {
			return errors.New("far's input still open")
		}
		return nil
	})
	t.Logf("far got InputClosed %s after daemon-a died", time.Since(died).Round(time.Millisecond))
	ms, err := c.cl.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == "daemon-a" && m.Status != proto.MemberDead {
			t.Errorf("daemon-a is %s, want dead", m.Status)
		}
	}
	c.stopA()
}

// gatedNode is a dynamic node speaking the protocol itself, whose read loop blocks on
// every event until released: a consumer slow enough to fill its daemon's queues.
type gatedNode struct {
	conn *proto.Conn
	gate chan struct{}
	mu   sync.Mutex
	got  []proto.Input
}

func connectGated(t *testing.T, d *Daemon, id string) *gatedNode {
	t.Helper()
	nc, err := net.Dial("unix", d.NodeSocket())
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedNode{gate: make(chan struct{})}
	g.conn = proto.NewConn(nc, proto.Options{OnEvent: func(typ string, body proto.Body) {
		<-g.gate
		if typ == proto.TypeInput {
			var in proto.Input
			if body.Decode(&in) == nil {
				g.mu.Lock()
				g.got = append(g.got, in)
				g.mu.Unlock()
			}
		}
	}})
	t.Cleanup(func() { _ = g.conn.Close() })
	var reply proto.NodeRegisterReply
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.conn.Request(ctx, proto.TypeNodeRegister, proto.NodeRegisterRequest{NodeID: id}, &reply); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	return g
}

func TestSlowRemoteConsumerDoesNotSlowLocalOne(t *testing.T) {
	// Fewer than the node library's own per-input buffer (1024 events), so a local
	// consumer starved of CPU by a loaded machine still cannot drop any: every loss here
	// would be the daemon's.
	const n = 1000
	c := startCluster2(t)
	c.start(t, spanDF(n, 1))
	src := connectNode(t, c.a, "src")
	near := count(connectNode(t, c.a, "near"))
	far := connectGated(t, c.b, "far") // reads nothing until released

	start := time.Now()
	for i := 1; i <= n; i++ {
		if err := src.Send("data", payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	sendTime := time.Since(start)
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got, _, _ := near.snapshot(); got != n {
			return fmt.Errorf("near received %d of %d", got, n)
		}
		return nil
	})
	t.Logf("%d messages sent in %s, all received by the local consumer in %s while the remote one was stalled",
		n, sendTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The stalled consumer's own queue (size 1) dropped the excess on daemon B.
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		df := c.b.dataflow(c.b.allDataflows()[0].id)
		if _, dropped := df.router.inbox("far").stats("data"); dropped == 0 {
			return errors.New("nothing dropped for far yet")
		}
		return nil
	})
	close(far.gate)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		far.mu.Lock()
		defer far.mu.Unlock()
		if len(far.got) == 0 || string(far.got[len(far.got)-1].Data) != string(payload(n)) {
			return fmt.Errorf("far has %d messages, not the last one yet", len(far.got))
		}
		return nil
	})
	far.mu.Lock()
	got, last := len(far.got), far.got[len(far.got)-1]
	far.mu.Unlock()
	if got >= n || last.Dropped == 0 {
		t.Errorf("slow far got %d of %d, last says %d dropped: want drops", got, n, last.Dropped)
	}
	t.Logf("slow remote consumer: %d received, %d dropped", got, last.Dropped)
}

func TestPeerQueueDropsOldestDataKeepsCloses(t *testing.T) {
	q := newPeerQueue(3)
	for i := 1; i <= 2; i++ {
		q.push(peerItem{typ: proto.TypeRemoteOutput, out: &proto.RemoteOutput{Data: payload(i)}})
	}
	q.push(peerItem{typ: proto.TypeRemoteOutputClosed, ctl: &proto.RemoteOutputClosed{Node: "x"}})
	for i := 3; i <= 6; i++ {
		q.push(peerItem{typ: proto.TypeRemoteOutput, out: &proto.RemoteOutput{Data: payload(i)}})
	}
	var got []string
	for {
		it, ok := q.pop()
		if !ok {
			break
		}
		if it.ctl != nil {
			got = append(got, "closed")
		} else {
			got = append(got, string(it.out.Data))
		}
	}
	want := []string{"closed", "m4", "m5", "m6"}
	if !slices.Equal(got, want) {
		t.Errorf("queue gave %v, want %v", got, want)
	}
	if q.dropped != 3 {
		t.Errorf("dropped %d, want 3", q.dropped)
	}
}

// testLog is silent unless DORACTL_TEST_LOG names a level.
func testLog(name string) hclog.Logger {
	lvl := os.Getenv("DORACTL_TEST_LOG")
	if lvl == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(lvl), Output: os.Stderr})
}

func TestPeerQueueStaysBoundedUnderOverflow(t *testing.T) {
	q := newPeerQueue(4)
	for i := 1; i <= 10000; i++ {
		q.push(peerItem{typ: proto.TypeRemoteOutput, out: &proto.RemoteOutput{Data: payload(i)}})
		if i%1000 == 0 {
			q.push(peerItem{typ: proto.TypeRemoteOutputClosed, ctl: &proto.RemoteOutputClosed{Node: "x"}})
		}
		if i%7 == 0 {
			q.pop()
		}
		if n := q.len(); n > 4+i/1000 {
			t.Fatalf("after %d pushes the queue holds %d items", i, n)
		}
		if cap(q.items) > 64 {
			t.Fatalf("after %d pushes the queue's buffer has grown to %d", i, cap(q.items))
		}
	}
	var last string
	for {
		it, ok := q.pop()
		if !ok {
			break
		}
		if it.out != nil {
			last = string(it.out.Data)
		}
	}
	if last != "m10000" {
		t.Errorf("last message %q, want m10000", last)
	}
}
