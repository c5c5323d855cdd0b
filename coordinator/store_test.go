package coordinator

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

func TestStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir }
	ts1 := startServer(t, withDir)
	f := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	old := startDF(t, ts1, "old", twoNodes)
	waitStatus(t, ts1, "old", proto.DataflowRunning, proto.NodeRunning)
	stopDF(t, ts1, "old", proto.APIStopRequest{})
	demo := startDF(t, ts1, "demo", twoNodes)
	waitStatus(t, ts1, "demo", proto.DataflowRunning, proto.NodeRunning)
	ts1.shutdown(t)

	ts2 := startServer(t, withDir)
	list, err := ts2.cl.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "old" || list[0].Status != proto.DataflowFinished ||
		list[1].Name != "demo" || list[1].Status != proto.DataflowRunning {
		t.Fatalf("after restart: %+v", list)
	}
	ms, _ := ts2.cl.Members(context.Background())
	if len(ms) != 2 || ms[1].Name != "daemon-a" {
		t.Errorf("members after restart %+v, want the coordinator and the daemon known before", ms)
	}

	// The daemon comes back with what it runs, plus a node of a dataflow this
	// coordinator never heard of: the known one is adopted, the rest fenced.
	running := append(f.running(), proto.RunningNode{DataflowID: "stray", NodeID: "x", PID: 9})
	reply := f.reconnect(ts2.srv.DaemonAddr(), running)
	if !slices.Equal(reply.KillDataflows, []string{"stray"}) || len(reply.StopDataflows) != 0 {
		t.Fatalf("register reply %+v", reply)
	}
	waitStatus(t, ts2, demo.ID, proto.DataflowRunning, proto.NodeRunning)
	rep, _ := stopDF(t, ts2, "demo", proto.APIStopRequest{})
	if rep.Status != proto.DataflowFinished || rep.Error != "" {
		t.Errorf("stop after restart: %+v", rep)
	}
	if d, err := ts2.cl.Get(context.Background(), old.ID); err != nil || d.Name != "old" {
		t.Errorf("get by id after restart: %+v %v", d, err)
	}
}

func TestStopIntentSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir }
	ts1 := startServer(t, withDir)
	f := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-a", mode: stopSilent})
	demo := startDF(t, ts1, "demo", twoNodes)
	waitStatus(t, ts1, "demo", proto.DataflowRunning, proto.NodeRunning)
	stopDF(t, ts1, "demo", proto.APIStopRequest{Detach: true})
	ts1.shutdown(t)

	ts2 := startServer(t, withDir)
	d, err := ts2.cl.Get(context.Background(), "demo")
	if err != nil || d.Status != proto.DataflowStopping {
		t.Fatalf("after restart: %+v %v", d, err)
	}
	reply := f.reconnect(ts2.srv.DaemonAddr(), f.running())
	if !slices.Equal(reply.StopDataflows, []string{demo.ID}) {
		t.Fatalf("register reply %+v, want the recorded stop", reply)
	}
}

func TestReconcileRestartedDaemon(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", epoch: 1})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	f.disconnect()

	// Same name, new boot epoch, nothing running: the old nodes died with it.
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", epoch: 2})
	d := waitStatus(t, ts, "demo", proto.DataflowFailed, proto.NodeLost)
	for _, n := range d.Nodes {
		if n.Outcome != "lost (daemon daemon-a restarted)" {
			t.Errorf("node %s outcome %q", n.ID, n.Outcome)
		}
	}
	if !strings.Contains(d.Reason, "2 nodes lost") {
		t.Errorf("reason %q", d.Reason)
	}
}

func TestReconnectFencesFailedDataflow(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	demo := startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	running := f.running()
	// Declared dead (the port refuses), then it comes back with its old nodes.
	_ = f.ctrl.Close()
	f.disconnect()
	waitStatus(t, ts, "demo", proto.DataflowFailed, proto.NodeLost)
	reply := f.reconnect(ts.srv.DaemonAddr(), running)
	if !slices.Equal(reply.KillDataflows, []string{demo.ID}) {
		t.Fatalf("register reply %+v, want %s fenced", reply, demo.ID)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if v := ts.srv.live.verdict("daemon-a"); v != proto.MemberAlive {
			return fmt.Errorf("verdict %s after re-register", v)
		}
		return nil
	})
	// Outcomes stay recorded.
	d := waitStatus(t, ts, "demo", proto.DataflowFailed, proto.NodeLost)
	_ = d
}

func TestRestartFindsDeadDaemon(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir }
	ts1 := startServer(t, withDir)
	f := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	startDF(t, ts1, "demo", twoNodes)
	waitStatus(t, ts1, "demo", proto.DataflowRunning, proto.NodeRunning)
	ts1.shutdown(t)
	f.crash() // dies while the coordinator is down

	ts2 := startServer(t, withDir)
	d := waitStatus(t, ts2, "demo", proto.DataflowFailed, proto.NodeLost)
	if !strings.Contains(d.Nodes[0].Outcome, "refuses connections") {
		t.Errorf("outcome %q", d.Nodes[0].Outcome)
	}
}

func TestReconnectReportsOrInfersOutcomes(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	demo := startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	f.disconnect()
	// Both nodes ended while the link was down; the daemon resends one outcome.
	f.reconnect(ts.srv.DaemonAddr(), nil)
	f.report(demo.ID, "source", proto.NodeFinished, "", 0)
	var d proto.Dataflow
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		got, err := ts.cl.Get(context.Background(), "demo")
		if err != nil {
			return err
		}
		if got.Status != proto.DataflowFailed {
			return fmt.Errorf("status %s", got.Status)
		}
		d = *got
		return nil
	})
	if d.Nodes[0].Status != proto.NodeFinished {
		t.Errorf("reported outcome replaced: %+v", d.Nodes[0])
	}
	if d.Nodes[1].Status != proto.NodeLost || !strings.Contains(d.Nodes[1].Outcome, "not running on daemon daemon-a when it reconnected") {
		t.Errorf("unreported node: %+v", d.Nodes[1])
	}
}
