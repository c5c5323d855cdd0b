package coordinator

import (
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// A node inferred lost when its daemon reconnected without it may have made the
// dataflow final; the real outcome the daemon reports right after replaces the inferred
// one and the dataflow's outcome is derived again. A stale "running" does not revive it.
func TestReportedOutcomeReplacesInferredOne(t *testing.T) {
	r := newRegistry(nil)
	r.load([]*dataflowRec{{
		ID: "df", Name: "demo", Status: proto.DataflowStopping,
		Stop: &stopIntent{At: time.Now(), Grace: time.Second},
		Nodes: []*nodeRec{
			{ID: "a", Daemon: "daemon-a", Status: proto.NodeRunning},
			{ID: "b", Daemon: "daemon-b", Status: proto.NodeStopped, Outcome: "stopped"},
		},
	}})
	r.resolveMissing("daemon-a", []nodeRef{{dataflow: "df", node: "a"}})
	d, _ := r.view("df")
	if !isFinalDataflow(d.Status) || d.Nodes[0].Status != proto.NodeStopped {
		t.Fatalf("after the inference: %+v", d)
	}
	if res, why := r.applyStatus("daemon-a", proto.NodeStatus{DataflowID: "df", NodeID: "a", Status: proto.NodeRunning}); res != statusIgnored {
		t.Fatalf("a stale running report revived the node: %v %s", res, why)
	}
	res, why := r.applyStatus("daemon-a", proto.NodeStatus{DataflowID: "df", NodeID: "a",
		Status: proto.NodeFailed, Outcome: "failed (exit 3)", Time: time.Now()})
	if res != statusApplied {
		t.Fatalf("the reported outcome was not applied: %s", why)
	}
	d, _ = r.view("df")
	if d.Status != proto.DataflowFailed || d.Nodes[0].Outcome != "failed (exit 3)" {
		t.Fatalf("after the report: %+v", d)
	}
	// The reported outcome is final: a second report does not replace it.
	if res, _ := r.applyStatus("daemon-a", proto.NodeStatus{DataflowID: "df", NodeID: "a", Status: proto.NodeStopped}); res != statusIgnored {
		t.Fatal("a reported outcome was replaced")
	}
}

func isFinalDataflow(s string) bool {
	return s == proto.DataflowFinished || s == proto.DataflowFailed
}

// A node lost with its confirmed-dead daemon keeps that outcome once its dataflow is
// final: the fenced kill the daemon reports when it comes back does not rewrite it.
func TestDeathOutcomeSurvivesFencingReport(t *testing.T) {
	r := newRegistry(nil)
	r.load([]*dataflowRec{{
		ID: "df", Name: "demo", Status: proto.DataflowStopping,
		Stop:  &stopIntent{At: time.Now(), Grace: time.Second},
		Nodes: []*nodeRec{{ID: "a", Daemon: "daemon-a", Status: proto.NodeRunning}},
	}})
	r.resolveDaemon("daemon-a", proto.NodeLost, "lost (daemon daemon-a dead since 12:00:00: gone)")
	if d, _ := r.view("df"); d.Status != proto.DataflowFailed {
		t.Fatalf("after the death: %+v", d)
	}
	res, _ := r.applyStatus("daemon-a", proto.NodeStatus{DataflowID: "df", NodeID: "a",
		Status: proto.NodeKilled, Outcome: "killed (dataflow fenced by the coordinator)"})
	if d, _ := r.view("df"); res != statusIgnored || d.Status != proto.DataflowFailed || d.Nodes[0].Status != proto.NodeLost {
		t.Fatalf("the fenced kill rewrote the death's outcome: %v %+v", res, d)
	}
}
