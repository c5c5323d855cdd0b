package coordinator

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// A daemon confirmed dead that comes back with its nodes still running is fenced: the
// kills it then reports do not turn the failed dataflow into a finished one, with or
// without a stop issued while it was away.
func TestFencedKillsKeepDataflowFailed(t *testing.T) {
	for _, withStop := range []bool{true, false} {
		t.Run(fmt.Sprintf("stop=%v", withStop), func(t *testing.T) {
			ts := startServer(t, nil)
			f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-z", mode: stopSilent})
			rep := startDF(t, ts, "demo", twoNodes)
			waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
			running := f.running()

			var stopped chan *proto.APIStopReply
			if withStop {
				stopped = make(chan *proto.APIStopReply, 1)
				go func() {
					r, _ := ts.cl.Stop(context.Background(), "demo", proto.APIStopRequest{Grace: "20s"})
					stopped <- r
				}()
				testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
					if len(f.stopRequests()) == 0 {
						return fmt.Errorf("no stop received yet")
					}
					return nil
				})
			}
			f.crash()
			waitStatus(t, ts, "demo", proto.DataflowFailed, proto.NodeLost)
			if withStop {
				select {
				case r := <-stopped:
					if r == nil || r.Status != proto.DataflowFailed {
						t.Fatalf("stop reply %+v, want failed", r)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("stop did not return after the death")
				}
			}

			// The same daemon (same boot epoch) comes back, still running the nodes.
			back := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-z", epoch: f.epoch, running: running})
			if len(back.reply.KillDataflows) != 1 || back.reply.KillDataflows[0] != rep.ID {
				t.Fatalf("register reply kills %v, want [%s]", back.reply.KillDataflows, rep.ID)
			}
			for _, rn := range running {
				back.report(rn.DataflowID, rn.NodeID, proto.NodeKilled, "killed (dataflow fenced by the coordinator)", 0)
			}
			time.Sleep(300 * time.Millisecond) // let the reports be applied
			d, err := ts.cl.Get(context.Background(), "demo")
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != proto.DataflowFailed || strings.Contains(d.Reason, "killed after grace") {
				t.Errorf("after the fenced kills: %s (%s), want failed", d.Status, d.Reason)
			}
			for _, n := range d.Nodes {
				if n.Status != proto.NodeLost {
					t.Errorf("node %s: %s (%s), want lost", n.ID, n.Status, n.Outcome)
				}
			}
		})
	}
}

// A kill by fencing is not described as a kill after the grace.
func TestCleanReasonNamesKillCause(t *testing.T) {
	d := &dataflowRec{Stop: &stopIntent{}, Nodes: []*nodeRec{
		{ID: "a", Status: proto.NodeKilled, Outcome: "killed after grace"},
		{ID: "b", Status: proto.NodeKilled, Outcome: "killed (dataflow fenced by the coordinator)"},
		{ID: "c", Status: proto.NodeKilled, Outcome: "killed (dataflow fenced by the coordinator)"},
	}}
	want := "stopped by user (1 node killed after grace) (2 nodes killed (dataflow fenced by the coordinator))"
	if got := d.cleanReason(); got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}
