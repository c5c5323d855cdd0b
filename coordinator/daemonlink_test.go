package coordinator

import (
	"context"
	"errors"
	"github.com/doractl/doractl/internal/testutil"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/proto"
)

// spanning has a producer on robot-a with one consumer beside it and two on robot-b.
const spanning = `nodes:
  - id: source
    path: ./source
    deploy:
      machine: robot-a
    inputs:
      tick: dora/timer/millis/100
    outputs:
      - data
      - other
  - id: near
    path: ./near
    deploy:
      machine: robot-a
    inputs:
      data: source/data
  - id: far1
    path: ./far
    deploy:
      machine: robot-b
    inputs:
      data: source/data
      other: source/other
  - id: far2
    path: ./far
    deploy:
      machine: robot-b
    inputs:
      data: source/data
    outputs:
      - back
  - id: back
    path: ./back
    deploy:
      machine: robot-a
    inputs:
      back: far2/back
`

func TestPlacementDefaultMachine(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.DefaultMachine = "robot-b" })
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-local", machine: "coordinator-host"})
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b"})
	startDF(t, ts, "free", twoNodes)
	d := waitStatus(t, ts, "free", proto.DataflowRunning, proto.NodeRunning)
	for _, n := range d.Nodes {
		if n.Daemon != "daemon-b" {
			t.Errorf("node %s on %s, want daemon-b (the default machine)", n.ID, n.Daemon)
		}
	}

	ts2 := startServer(t, func(c *Config) { c.DefaultMachine = "robot-z" })
	f := newFakeDaemon(t, ts2.srv.DaemonAddr(), fakeOpts{name: "daemon-local", machine: "coordinator-host"})
	_, err := ts2.cl.Start(ctxT(t, 5*time.Second), proto.APIStartRequest{Descriptor: twoNodes})
	if client.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("start with an absent default machine: %v, want 400", err)
	}
	for _, want := range []string{`node "source"`, `node "sink"`, `"robot-z"`, "coordinator-host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("placement error %q does not mention %s", err, want)
		}
	}
	if n := len(f.spawnRequests()); n != 0 {
		t.Errorf("%d spawns sent for an unplaceable dataflow", n)
	}
}

func TestSpawnCarriesRemoteSubscriptions(t *testing.T) {
	ts := startServer(t, nil)
	a := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	b := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b"})
	startDF(t, ts, "span", spanning)
	waitStatus(t, ts, "span", proto.DataflowRunning, proto.NodeRunning)
	ra, rb := a.spawnRequests(), b.spawnRequests()
	if len(ra) != 1 || len(rb) != 1 {
		t.Fatalf("spawns: a %d, b %d", len(ra), len(rb))
	}
	wantA := []proto.RemoteSubscription{
		{Node: "source", Output: "data", Daemons: []string{"daemon-b"}},
		{Node: "source", Output: "other", Daemons: []string{"daemon-b"}},
	}
	if !reflect.DeepEqual(ra[0].Subscriptions, wantA) {
		t.Errorf("daemon-a subscriptions %+v, want %+v", ra[0].Subscriptions, wantA)
	}
	wantB := []proto.RemoteSubscription{{Node: "far2", Output: "back", Daemons: []string{"daemon-a"}}}
	if !reflect.DeepEqual(rb[0].Subscriptions, wantB) {
		t.Errorf("daemon-b subscriptions %+v, want %+v", rb[0].Subscriptions, wantB)
	}
	for _, r := range []proto.SpawnRequest{ra[0], rb[0]} {
		if r.DaemonAddrs["daemon-a"] == "" || r.DaemonAddrs["daemon-b"] == "" || r.Placement["far1"] != "daemon-b" {
			t.Errorf("spawn to %s: placement %v, addresses %v", r.Name, r.Placement, r.DaemonAddrs)
		}
	}
}

func TestDaemonDeathNoticeToPeers(t *testing.T) {
	ts := startServer(t, nil)
	a := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	b := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b"})
	rep := startDF(t, ts, "span", spanning)
	waitStatus(t, ts, "span", proto.DataflowRunning, proto.NodeRunning)
	// Another dataflow only on daemon-b: not concerned by daemon-a's death.
	onlyB := strings.ReplaceAll(strings.ReplaceAll(twoNodes, "./source", "./source\n    deploy:\n      machine: robot-b"), "./sink", "./sink\n    deploy:\n      machine: robot-b")
	startDF(t, ts, "onlyb", onlyB)
	waitStatus(t, ts, "onlyb", proto.DataflowRunning, proto.NodeRunning)

	a.crash() // link reset and control port refused: confirmed dead at once
	var got []proto.DaemonDead
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got = b.deathNotices(); len(got) == 0 {
			return errors.New("daemon-b got no death notice")
		}
		return nil
	})
	n := got[0]
	if n.Name != "daemon-a" || !reflect.DeepEqual(n.DataflowIDs, []string{rep.ID}) || !strings.Contains(n.Reason, "daemon-a") {
		t.Errorf("notice %+v, want daemon-a for dataflow %s only", n, rep.ID)
	}
	d, err := ts.cl.Get(context.Background(), "span")
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range d.Nodes {
		if node.Daemon == "daemon-a" && node.Status != proto.NodeLost {
			t.Errorf("node %s on the dead daemon is %s, want lost", node.ID, node.Status)
		}
	}
}
