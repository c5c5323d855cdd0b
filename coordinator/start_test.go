package coordinator

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/proto"
)

const twoNodes = `nodes:
  - id: source
    path: ./source
    inputs:
      tick: dora/timer/millis/100
    outputs:
      - data
  - id: sink
    path: ./sink
    inputs:
      data: source/data
`

func startDF(t *testing.T, ts *testServer, name, yaml string) *proto.APIStartReply {
	t.Helper()
	rep, err := ts.cl.Start(ctxT(t, 10*time.Second), proto.APIStartRequest{
		Name: name, Descriptor: yaml, Path: "dataflow.yml", WorkingDir: "/work/df",
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return rep
}

// waitStatus waits until the dataflow has the status and every node one of nodeStatus.
func waitStatus(t *testing.T, ts *testServer, ref, status, nodeStatus string) proto.Dataflow {
	t.Helper()
	var d *proto.Dataflow
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		var err error
		d, err = ts.cl.Get(context.Background(), ref)
		if err != nil {
			return err
		}
		if d.Status != status {
			return fmt.Errorf("status %s, want %s", d.Status, status)
		}
		for _, n := range d.Nodes {
			if n.Status != nodeStatus {
				return fmt.Errorf("node %s is %s, want %s", n.ID, n.Status, nodeStatus)
			}
		}
		return nil
	})
	return *d
}

func TestStartListRunning(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	rep := startDF(t, ts, "demo", twoNodes)
	if rep.Name != "demo" || rep.ID == "" {
		t.Fatalf("start reply %+v", rep)
	}
	d := waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	if len(d.Nodes) != 2 || d.Nodes[0].Daemon != "daemon-a" || d.Nodes[0].Machine != "robot-a" {
		t.Fatalf("nodes %+v", d.Nodes)
	}
	list, err := ts.cl.List(context.Background())
	if err != nil || len(list) != 1 || list[0].ID != rep.ID {
		t.Fatalf("list = %+v, %v", list, err)
	}

	spawns := f.spawnRequests()
	if len(spawns) != 1 || len(spawns[0].Nodes) != 2 {
		t.Fatalf("spawns %+v", spawns)
	}
	sp := spawns[0]
	if sp.Placement["source"] != "daemon-a" || sp.DaemonAddrs["daemon-a"] == "" {
		t.Errorf("placement %v, addrs %v", sp.Placement, sp.DaemonAddrs)
	}
	src := sp.Nodes[0]
	if src.Path != "/work/df/source" || src.WorkingDir != "/work/df" {
		t.Errorf("source spec path %q wd %q", src.Path, src.WorkingDir)
	}
	if len(src.Inputs) != 1 || src.Inputs[0].Timer != 100*time.Millisecond {
		t.Errorf("source inputs %+v", src.Inputs)
	}
	sink := sp.Nodes[1]
	if len(sink.Inputs) != 1 || sink.Inputs[0].Node != "source" || sink.Inputs[0].Output != "data" || sink.Inputs[0].QueueSize != 10 {
		t.Errorf("sink inputs %+v", sink.Inputs)
	}

	// The name is taken while the dataflow runs.
	_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "demo", Descriptor: twoNodes})
	if client.StatusOf(err) != http.StatusConflict {
		t.Errorf("second start with the same name: %v (status %d), want 409", err, client.StatusOf(err))
	}
	// A name that reads as an id, or is awkward to type, is refused.
	for _, bad := range []string{rep.ID, "a b/c", "-x", strings.Repeat("n", 65)} {
		_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Name: bad, Descriptor: twoNodes})
		if client.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "invalid dataflow name") {
			t.Errorf("start named %q: %v (status %d), want 400 invalid dataflow name", bad, err, client.StatusOf(err))
		}
	}
	// Without a name one is generated.
	rep2 := startDF(t, ts, "", twoNodes)
	if rep2.Name == "" || rep2.Name == "demo" {
		t.Errorf("generated name %q", rep2.Name)
	}
}

func TestStartBadDescriptor(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	bad := "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x: [unclosed\n"
	_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: bad, Path: "flow.yml"})
	if client.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("bad yaml: %v (status %d), want 400", err, client.StatusOf(err))
	}
	if !strings.Contains(err.Error(), "flow.yml:") {
		t.Errorf("error %q does not name the file and line", err)
	}
	t.Logf("bad yaml: %v", err)

	unknownInput := "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x: nowhere/out\n"
	_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: unknownInput, Path: "flow.yml"})
	if client.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "flow.yml:5") {
		t.Errorf("unknown input source: %v, want 400 at flow.yml:5", err)
	}
	list, _ := ts.cl.List(context.Background())
	if len(list) != 0 {
		t.Errorf("a rejected descriptor was recorded: %+v", list)
	}
}

func TestPlacement(t *testing.T) {
	ts := startServer(t, nil)
	_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: twoNodes})
	if client.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no daemon connected") {
		t.Fatalf("start without daemons: %v, want 503 no daemon connected", err)
	}

	a := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a", labels: map[string]string{"gpu": "true"}})
	b := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b"})

	onMissing := "nodes:\n  - id: cam\n    path: ./cam\n    deploy:\n      machine: robot-z\n"
	_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: onMissing})
	if client.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("unknown machine: %v, want 400", err)
	}
	for _, want := range []string{`node "cam"`, `"robot-z"`, "robot-a", "robot-b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("placement error %q does not mention %s", err, want)
		}
	}

	badLabels := "nodes:\n  - id: det\n    path: ./det\n    deploy:\n      labels:\n        gpu: \"false\"\n"
	_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: badLabels})
	if client.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "gpu=false") {
		t.Errorf("unmatched labels: %v, want 400 naming gpu=false", err)
	}
	if n := len(a.spawnRequests()) + len(b.spawnRequests()); n != 0 {
		t.Fatalf("%d spawns sent for unplaceable dataflows", n)
	}

	mixed := `nodes:
  - id: det
    path: ./det
    deploy:
      labels:
        gpu: "true"
  - id: arm
    path: ./arm
    _unstable_deploy:
      machine: robot-b
`
	// A node with no deploy section, two daemons and none on the coordinator's machine:
	// refused, never put on whichever daemon sorts first.
	free := mixed + "  - id: free\n    path: ./free\n"
	_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: free})
	if client.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `node "free": no deploy.machine`) || !strings.Contains(err.Error(), "--default-machine") {
		t.Errorf("node without deploy and no daemon on the coordinator's machine: %v", err)
	}
	startDF(t, ts, "mixed", mixed)
	d := waitStatus(t, ts, "mixed", proto.DataflowRunning, proto.NodeRunning)
	got := map[string]string{}
	for _, n := range d.Nodes {
		got[n.ID] = n.Daemon
	}
	want := map[string]string{"det": "daemon-a", "arm": "daemon-b"}
	for id, daemon := range want {
		if got[id] != daemon {
			t.Errorf("node %s on %q, want %q", id, got[id], daemon)
		}
	}
	if len(a.spawnRequests()) != 1 || len(b.spawnRequests()) != 1 {
		t.Errorf("spawns: a %d, b %d", len(a.spawnRequests()), len(b.spawnRequests()))
	}
}

func TestPlacementPrefersOwnMachine(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-local", machine: "coordinator-host"})
	startDF(t, ts, "local", twoNodes)
	d := waitStatus(t, ts, "local", proto.DataflowRunning, proto.NodeRunning)
	for _, n := range d.Nodes {
		if n.Daemon != "daemon-local" {
			t.Errorf("node %s on %s, want daemon-local", n.ID, n.Daemon)
		}
	}
}

// camArm puts cam on robot-a and arm on robot-b.
const camArm = `nodes:
  - id: cam
    path: ./cam
    deploy:
      machine: robot-a
  - id: arm
    path: ./arm
    deploy:
      machine: robot-b
`

func TestStartFailureStopsWhatWasSpawned(t *testing.T) {
	ts := startServer(t, nil)
	good := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b", failSpawn: "cannot run ./arm: no such file"})
	yaml := camArm
	_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "broken", Descriptor: yaml})
	if client.StatusOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), `daemon "daemon-b"`) ||
		!strings.Contains(err.Error(), "cannot run ./arm") {
		t.Fatalf("start with a failing daemon: %v (status %d)", err, client.StatusOf(err))
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		stops := good.stopRequests()
		if len(stops) != 1 || !stops[0].Force {
			return fmt.Errorf("stops on the daemon that spawned: %+v", stops)
		}
		return nil
	})
	d, err := ts.cl.Get(context.Background(), "broken")
	if err != nil || d.Status != proto.DataflowFailed || !strings.HasPrefix(d.Reason, "start failed: cannot run ./arm") ||
		!strings.Contains(d.Reason, `(refused by daemon "daemon-b"`) {
		t.Fatalf("after a failed start: %+v %v", d, err)
	}
	for _, n := range d.Nodes {
		if n.ID == "arm" && (n.Status != proto.NodeFailed || !strings.HasPrefix(n.Outcome, "not started: cannot run ./arm")) {
			t.Errorf("the refused node: %s %q, want failed with the refusal", n.Status, n.Outcome)
		}
	}
	err = ts.cl.Logs(context.Background(), "broken", "arm", 0, false, io.Discard)
	if client.StatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), `node "arm" of dataflow "broken" has no log: it never started (cannot run ./arm`) {
		t.Errorf("logs of the refused node: %v", err)
	}
	// The name is free again.
	newYAML := strings.ReplaceAll(yaml, "robot-b", "robot-a")
	if _, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "broken", Descriptor: newYAML}); err != nil {
		t.Errorf("start again: %v", err)
	}
}

// A daemon that dies while it spawns its nodes: they are lost with it, not "start
// aborted", and the start fails naming the death.
func TestStartDaemonDiesDuringSpawn(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	dying := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b", hangSpawn: true})
	yaml := camArm
	done := make(chan error, 1)
	go func() {
		_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "span", Descriptor: yaml})
		done <- err
	}()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if len(dying.spawnRequests()) == 0 {
			return fmt.Errorf("no spawn on daemon-b yet")
		}
		d, err := ts.cl.Get(context.Background(), "span")
		if err != nil {
			return err
		}
		for _, n := range d.Nodes {
			if n.ID == "cam" && n.Status != proto.NodeRunning {
				return fmt.Errorf("cam on daemon-a is %s", n.Status)
			}
		}
		return nil
	})
	dying.crash()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("start still waiting 10s after its daemon died")
	}
	if client.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), `daemon "daemon-b" confirmed dead`) {
		t.Fatalf("start on a dying daemon: %v (status %d)", err, client.StatusOf(err))
	}
	d, err := ts.cl.Get(context.Background(), "span")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range d.Nodes {
		if n.Daemon == "daemon-b" && (n.Status != proto.NodeLost || !strings.Contains(n.Outcome, "daemon daemon-b dead")) {
			t.Errorf("node %s on the dead daemon: %s %q, want lost with it", n.ID, n.Status, n.Outcome)
		}
		// daemon-a had started cam: the abort killed it.
		if n.ID == "cam" && (n.Status != proto.NodeKilled || n.Outcome != "killed (start aborted: daemon daemon-b failed its share)") {
			t.Errorf("cam, started then aborted: %s %q", n.Status, n.Outcome)
		}
	}
	if d.Status != proto.DataflowFailed {
		t.Errorf("dataflow %s, want failed", d.Status)
	}
}

// A request body over the limit is refused with the limit, not a bare decoder error.
func TestStartOversizedRequest(t *testing.T) {
	ts := startServer(t, nil)
	big := twoNodes + strings.Repeat("# padding\n", maxRequestBody/10+1)
	_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "big", Descriptor: big})
	if client.StatusOf(err) != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "a descriptor may be at most 4 MiB") {
		t.Fatalf("oversized start: %v (status %d)", err, client.StatusOf(err))
	}
	// Within the body limit but over the descriptor's: the descriptor says so.
	_, err = ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "big", Descriptor: big[:dataflow.MaxSize+100]})
	if client.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "over the 4 MiB limit") {
		t.Fatalf("oversized descriptor: %v (status %d)", err, client.StatusOf(err))
	}
}

// A node for a machine whose daemon is dead: the placement error says so.
func TestPlacementNamesDeadDaemonOfMachine(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a"})
	b := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b"})
	b.crash()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if m, _ := memberStatus(t, ts, "daemon-b"); m.Status != proto.MemberDead {
			return fmt.Errorf("daemon-b %s", m.Status)
		}
		return nil
	})
	onB := "nodes:\n  - id: arm\n    path: ./arm\n    deploy:\n      machine: robot-b\n"
	_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Descriptor: onB})
	if client.StatusOf(err) != http.StatusBadRequest ||
		!strings.Contains(err.Error(), `node "arm": no daemon on machine "robot-b" (daemon "daemon-b" was confirmed dead at `) {
		t.Fatalf("start on a dead machine: %v", err)
	}
}

// Two daemons refuse their share: the start names both refusals, and each node says
// whether it was refused itself or with another node of its daemon.
func TestStartEveryRefusalTold(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "robot-a", failSpawn: `node "gone-bare": no-such-program: not found`})
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", machine: "robot-b", failSpawn: `node "gone-b": ./gone-b: no such file`})
	yaml := `nodes:
  - id: ok-a
    path: ./ok
    deploy:
      machine: robot-a
  - id: gone-bare
    path: no-such-program
    deploy:
      machine: robot-a
  - id: gone-b
    path: ./gone-b
    deploy:
      machine: robot-b
`
	_, err := ts.cl.Start(context.Background(), proto.APIStartRequest{Name: "m1", Descriptor: yaml})
	for _, want := range []string{`node "gone-bare": no-such-program: not found (refused by daemon "daemon-a"`, `node "gone-b": ./gone-b: no such file (refused by daemon "daemon-b"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start refused by two daemons: %v\nwant it to say %s", err, want)
		}
	}
	d, err := ts.cl.Get(context.Background(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"gone-bare": `not started: node "gone-bare": no-such-program: not found (refused by daemon "daemon-a"`,
		"gone-b":    `not started: node "gone-b": ./gone-b: no such file (refused by daemon "daemon-b"`,
		"ok-a":      `not started: daemon daemon-a refused its share for another node (node "gone-bare"`,
	}
	for _, n := range d.Nodes {
		if !strings.HasPrefix(n.Outcome, want[n.ID]) || n.Status != proto.NodeFailed {
			t.Errorf("node %s: %s %q\nwant failed %q…", n.ID, n.Status, n.Outcome, want[n.ID])
		}
	}
	err = ts.cl.Logs(context.Background(), "m1", "ok-a", 0, false, io.Discard)
	if client.StatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), `node "ok-a" of dataflow "m1" has no log: it never started (daemon daemon-a refused its share for another node`) {
		t.Errorf("logs of a node refused with another: %v", err)
	}
}
