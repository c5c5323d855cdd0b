package coordinator

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/failure"
	"github.com/doractl/doractl/internal/testutil"
	"github.com/doractl/doractl/proto"
)

const twoMachines = `nodes:
  - id: cam
    path: ./cam
    outputs:
      - image
    deploy:
      machine: robot-a
  - id: arm
    path: ./arm
    inputs:
      image: cam/image
    deploy:
      machine: robot-c
`

// A daemon confirmed dead (a freeze) while the rest of its dataflow runs elsewhere comes
// back with its node still running: the register reply fences that node, its recorded
// outcome stays lost, the dataflow keeps running with a reason naming the loss, and
// ends failed once the rest is stopped.
func TestLostNodeFencedWhileDataflowRuns(t *testing.T) {
	ts := startServer(t, nil)
	addr := ts.srv.DaemonAddr()
	newFakeDaemon(t, addr, fakeOpts{name: "daemon-robot-a", machine: "robot-a"})
	c := newFakeDaemon(t, addr, fakeOpts{name: "daemon-robot-c", machine: "robot-c", mode: stopSilent})
	rep := startDF(t, ts, "demo", twoMachines)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	running := c.running()

	ts.srv.live.det.Declare("daemon-robot-c", failure.Dead, "gossip: declared dead by memberlist; control link: down (test freeze)")
	wantReason := `1 node lost: daemon "daemon-robot-c" confirmed dead at `
	check := func(when string) {
		t.Helper()
		testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			d, err := ts.cl.Get(context.Background(), "demo")
			if err != nil {
				return err
			}
			if d.Status != proto.DataflowRunning || !strings.Contains(d.Reason, wantReason) || !strings.Contains(d.Reason, "(gossip: declared dead by memberlist") {
				return fmt.Errorf("%s: dataflow %s (%s), want running with %q", when, d.Status, d.Reason, wantReason)
			}
			for _, n := range d.Nodes {
				want := map[string]string{"cam": proto.NodeRunning, "arm": proto.NodeLost}[n.ID]
				if n.Status != want {
					return fmt.Errorf("%s: node %s %s (%s), want %s", when, n.ID, n.Status, n.Outcome, want)
				}
			}
			return nil
		})
	}
	check("after the death")
	select {
	case <-c.link().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the coordinator did not close the dead daemon's link")
	}

	// SIGCONT: the same daemon (same boot epoch) registers again, still running arm.
	reply := c.reconnect(addr, running)
	if len(reply.KillDataflows) != 0 {
		t.Errorf("register reply kills dataflows %v, want none (the dataflow still runs)", reply.KillDataflows)
	}
	if len(reply.KillNodes) != 1 || reply.KillNodes[0].DataflowID != rep.ID || reply.KillNodes[0].NodeID != "arm" {
		t.Fatalf("register reply fences nodes %+v, want arm of %s", reply.KillNodes, rep.ID)
	}
	// It resends the last status, then reports the fenced kill: neither replaces lost.
	c.report(rep.ID, "arm", proto.NodeRunning, "", 1000)
	c.report(rep.ID, "arm", proto.NodeKilled, "killed (dataflow fenced by the coordinator)", 1000)
	time.Sleep(300 * time.Millisecond)
	check("after the re-registration")

	r, err := ts.cl.Stop(ctxT(t, 10*time.Second), "demo", proto.APIStopRequest{Grace: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != proto.DataflowFailed {
		t.Fatalf("stop: %s (%s), want failed", r.Status, r.Error)
	}
	d, _ := ts.cl.Get(context.Background(), "demo")
	if !strings.Contains(d.Reason, wantReason) {
		t.Errorf("final reason %q, want it to name the lost node", d.Reason)
	}
	for _, n := range d.Nodes {
		if n.ID == "arm" && (n.Status != proto.NodeLost || !strings.HasPrefix(n.Outcome, "lost (daemon daemon-robot-c dead since")) {
			t.Errorf("arm ended %s (%s), want the recorded lost outcome", n.Status, n.Outcome)
		}
	}
}

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

// With a cluster key, a registration must prove it; a coordinator without one refuses a
// daemon that has one. A rejected daemon is listed nowhere.
func TestClusterKeyGatesRegistration(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.SecretKey = testKey })
	addr := ts.srv.DaemonAddr()
	newFakeDaemon(t, addr, fakeOpts{name: "daemon-good", key: testKey})
	if m, ok := memberStatus(t, ts, "daemon-good"); !ok || m.Status != proto.MemberAlive {
		t.Fatalf("daemon with the key: %+v %v, want alive", m, ok)
	}
	for _, tc := range []struct {
		name string
		key  []byte
		want string
	}{
		{"daemon-wrong-key", otherKey, proto.ErrKeyMismatch},
		{"daemon-no-key", nil, proto.ErrKeyRequired},
	} {
		_, err := newRejectedFake(t, addr, fakeOpts{name: tc.name, key: tc.key})
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if m, ok := memberStatus(t, ts, tc.name); ok {
			t.Errorf("%s is listed after its rejection: %+v", tc.name, m)
		}
	}

	plain := startServer(t, nil)
	_, err := newRejectedFake(t, plain.srv.DaemonAddr(), fakeOpts{name: "daemon-keyed", key: testKey})
	if !strings.Contains(err.Error(), proto.ErrKeyUnexpected) {
		t.Errorf("keyed daemon, coordinator without a key: %v", err)
	}
	if _, ok := memberStatus(t, plain, "daemon-keyed"); ok {
		t.Error("daemon-keyed is listed after its rejection")
	}
}

// Two daemons with one name: while the first one's link answers, the second is
// rejected (naming where the first registered from); once it is gone the second may
// register.
func TestDuplicateNameRejected(t *testing.T) {
	ts := startServer(t, nil)
	addr := ts.srv.DaemonAddr()
	first := newFakeDaemon(t, addr, fakeOpts{name: "daemon-robot-c", machine: "robot-c"})
	_, err := newRejectedFake(t, addr, fakeOpts{name: "daemon-robot-c", machine: "robot-c-clone"})
	for _, want := range []string{`daemon name "daemon-robot-c" is already registered from 127.0.0.1:`,
		fmt.Sprintf("(boot epoch %d); give this daemon another --machine-id or --name", first.epoch)} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("second registration: %v\nwant %s", err, want)
		}
	}
	if m, _ := memberStatus(t, ts, "daemon-robot-c"); m.Status != proto.MemberAlive || m.Machine != "robot-c" {
		t.Fatalf("after the rejection: %+v, want the first daemon alive", m)
	}
	select {
	case <-first.link().Done():
		t.Fatal("the first daemon's link was closed by the rejected one")
	case <-time.After(300 * time.Millisecond):
	}

	// A link that no longer answers (its daemon frozen or gone) is replaced.
	fz := &freezeConns{}
	frozen := newFakeDaemon(t, addr, fakeOpts{name: "daemon-frozen", wrap: fz.wrap})
	fz.freeze()
	start := time.Now()
	newFakeDaemon(t, addr, fakeOpts{name: "daemon-frozen", epoch: frozen.epoch + 1})
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("replacing a silent link took %s", el)
	}
	fz.thaw()

	// The same process (same boot epoch) dialling again while its old link still
	// answers, as a daemon does after its coordinator was paused: the new link wins.
	newFakeDaemon(t, addr, fakeOpts{name: "daemon-robot-c", machine: "robot-c", epoch: first.epoch})
	select {
	case <-first.link().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the old link of a daemon that registered again is still open")
	}
}

// freezeConns wraps sockets whose reads can be held, as in a stopped process: nothing
// received is answered while frozen.
type freezeConns struct{ frozen atomic.Bool }

func (f *freezeConns) wrap(nc net.Conn) net.Conn { return &freezeConn{Conn: nc, f: f} }
func (f *freezeConns) freeze()                   { f.frozen.Store(true) }
func (f *freezeConns) thaw()                     { f.frozen.Store(false) }

type freezeConn struct {
	net.Conn
	f      *freezeConns
	closed atomic.Bool
}

func (c *freezeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for c.f.frozen.Load() && !c.closed.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	return n, err
}

func (c *freezeConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// A daemon that announces its graceful leave over its control link is left at once;
// the link reset and refusing port of its exit that follow do not make it dead, and
// the outcomes it reported before the announcement stand.
func TestLeavingAnnouncementIsLeftNotDead(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	rep := startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	for _, id := range []string{"source", "sink"} {
		f.report(rep.ID, id, proto.NodeStopped, "stopped", 0)
	}
	f.leave("shutdown")
	f.crash() // port closed, then the link: what a crash looks like, too

	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		m, _ := memberStatus(t, ts, "daemon-a")
		if m.Status != proto.MemberLeft {
			return fmt.Errorf("daemon-a %s (%s), want left", m.Status, m.Reason)
		}
		if !strings.Contains(m.Reason, "announced graceful leave") {
			return fmt.Errorf("reason %q", m.Reason)
		}
		return nil
	})
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if m, _ := memberStatus(t, ts, "daemon-a"); m.Status != proto.MemberLeft {
			t.Fatalf("daemon-a turned %s (%s) after its announced leave", m.Status, m.Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := waitStatus(t, ts, "demo", proto.DataflowFinished, proto.NodeStopped)
	if d.Reason != "all nodes finished" {
		t.Logf("reason: %s", d.Reason)
	}

	// Gossip that still lists the process that left (its ring leave was late) does not
	// revive it; a new process under the name (a new boot epoch) does.
	ts.srv.live.onRingEvent(cluster.Event{Type: cluster.MemberUpdate,
		Member: cluster.Member{Name: "daemon-a", Meta: cluster.Meta{Role: cluster.RoleDaemon, BootEpoch: f.epoch}}})
	if m, _ := memberStatus(t, ts, "daemon-a"); m.Status != proto.MemberLeft {
		t.Fatalf("gossip of the process that left turned it %s (%s)", m.Status, m.Reason)
	}
	ts.srv.live.onRingEvent(cluster.Event{Type: cluster.MemberJoin,
		Member: cluster.Member{Name: "daemon-a", Meta: cluster.Meta{Role: cluster.RoleDaemon, BootEpoch: f.epoch + 1}}})
	if m, _ := memberStatus(t, ts, "daemon-a"); m.Status != proto.MemberAlive {
		t.Fatalf("a new process under the name is %s (%s), want alive", m.Status, m.Reason)
	}
}

// With a cluster key the control API requires it: without it, or with another key, a
// request is refused with the reason; health stays open for probes.
func TestAPIRequiresClusterKey(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.SecretKey = testKey })
	addr := ts.srv.ControlAddr()
	other := otherKey
	for _, tc := range []struct {
		name string
		cl   *client.Client
		want string
	}{
		{"no key", client.New(addr), proto.ErrAPIKeyRequired},
		{"another key", client.New(addr).WithKey(other), proto.ErrAPIKeyMismatch},
	} {
		_, err := ts.cl.List(context.Background()) // the keyed client is let in
		if err != nil {
			t.Fatalf("with the key: %v", err)
		}
		_, err = tc.cl.List(context.Background())
		if client.StatusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: list: %v, want 401 %q", tc.name, err, tc.want)
		}
		_, err = tc.cl.Start(context.Background(), proto.APIStartRequest{Name: "x", Descriptor: "nodes: []"})
		if client.StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("%s: start: %v, want 401", tc.name, err)
		}
		if _, err := tc.cl.Health(context.Background()); err != nil {
			t.Errorf("%s: health: %v, want it open", tc.name, err)
		}
	}
	// A coordinator without a key takes requests with or without one.
	open := startServer(t, nil)
	if _, err := client.New(open.srv.ControlAddr()).WithKey(other).List(context.Background()); err != nil {
		t.Errorf("keyed client, coordinator without a key: %v", err)
	}
}
