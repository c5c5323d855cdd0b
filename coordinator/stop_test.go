package coordinator

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/proto"
)

func stopDF(t *testing.T, ts *testServer, ref string, req proto.APIStopRequest) (*proto.APIStopReply, time.Duration) {
	t.Helper()
	start := time.Now()
	rep, err := ts.cl.Stop(context.Background(), ref, req)
	if err != nil {
		t.Fatalf("stop %s: %v", ref, err)
	}
	return rep, time.Since(start)
}

func TestStopCooperative(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)

	rep, elapsed := stopDF(t, ts, "demo", proto.APIStopRequest{Grace: "2s"})
	if rep.Status != proto.DataflowFinished || rep.Error != "" || len(rep.Unconfirmed) != 0 {
		t.Fatalf("stop reply %+v", rep)
	}
	for _, n := range rep.Nodes {
		if n.Status != proto.NodeStopped {
			t.Errorf("node %s: %s (%s), want stopped", n.ID, n.Status, n.Outcome)
		}
	}
	if elapsed > time.Second {
		t.Errorf("cooperative stop took %s", elapsed)
	}
	stops := f.stopRequests()
	if len(stops) != 1 || stops[0].Grace != 2*time.Second || stops[0].KillAfter != time.Second || stops[0].Force {
		t.Errorf("stop requests %+v, want one with grace 2s, kill after 1s", stops)
	}
	d := waitStatus(t, ts, "demo", proto.DataflowFinished, proto.NodeStopped)
	if d.EndedAt == nil || !strings.Contains(d.Reason, "stopped by user") {
		t.Errorf("ended %v, reason %q", d.EndedAt, d.Reason)
	}

	// Stopping again answers at once with the recorded outcomes.
	again, elapsed := stopDF(t, ts, "demo", proto.APIStopRequest{})
	if elapsed > 200*time.Millisecond {
		t.Errorf("second stop took %s", elapsed)
	}
	if again.Status != proto.DataflowFinished || again.Error != "" || len(again.Nodes) != 2 || again.Nodes[0].Status != proto.NodeStopped {
		t.Errorf("second stop %+v", again)
	}
	// It carries the duration of the stop that ended the dataflow, not its own.
	if took, err := time.ParseDuration(again.Elapsed); !again.AlreadyEnded || err != nil || took > time.Second {
		t.Errorf("second stop: already ended %v, elapsed %q, want the first stop's", again.AlreadyEnded, again.Elapsed)
	}
	if rep.AlreadyEnded {
		t.Errorf("first stop marked already ended")
	}
	if n := len(f.stopRequests()); n != 1 {
		t.Errorf("second stop sent %d more stop requests", n-1)
	}
	// The name is free again.
	startDF(t, ts, "demo", twoNodes)
}

func TestStopUnconfirmedReturnsAtTimeout(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-mute", mode: stopSilent})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)

	timeout := 1500 * time.Millisecond
	rep, elapsed := stopDF(t, ts, "demo", proto.APIStopRequest{Grace: "200ms", Timeout: timeout.String()})
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("stop returned after %s, want between %s and %s", elapsed, timeout, timeout+2*time.Second)
	}
	if len(rep.Unconfirmed) != 1 || rep.Unconfirmed[0] != "daemon-mute" {
		t.Errorf("unconfirmed %v, want [daemon-mute]", rep.Unconfirmed)
	}
	if !strings.Contains(rep.Error, `daemon "daemon-mute" did not confirm 2 nodes`) {
		t.Errorf("error %q", rep.Error)
	}
	if rep.Status != proto.DataflowStopping {
		t.Errorf("status %s, want stopping", rep.Status)
	}
	// It acknowledged the stop: its link works, it just did not report.
	if strings.Contains(rep.Error, "control link unreachable") {
		t.Errorf("error %q: the daemon acknowledged the stop", rep.Error)
	}
	stops := f.stopRequests()
	if len(stops) != 2 || stops[0].Force || !stops[1].Force {
		t.Errorf("stops %+v, want a graceful stop then a forced one at the deadline", stops)
	}
}

// A daemon that is not dead but does not acknowledge the stop over its link is named
// with the reason, and the stop returns by its deadline.
func TestStopUnacknowledgedSaysLinkUnreachable(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-deaf", mode: stopDeaf})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)

	timeout := 1500 * time.Millisecond
	rep, elapsed := stopDF(t, ts, "demo", proto.APIStopRequest{Grace: "200ms", Timeout: timeout.String()})
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("stop returned after %s, want between %s and %s", elapsed, timeout, timeout+2*time.Second)
	}
	if len(rep.Unconfirmed) != 1 || rep.Unconfirmed[0] != "daemon-deaf" {
		t.Errorf("unconfirmed %v, want [daemon-deaf]", rep.Unconfirmed)
	}
	// Without gossip the coordinator cannot say "alive via gossip": it gives the verdict.
	for _, want := range []string{`daemon "daemon-deaf" did not confirm 2 nodes`, "not confirmed dead (", "control link unreachable (stop not acknowledged", "the stop is applied when it reconnects"} {
		if !strings.Contains(rep.Error, want) {
			t.Errorf("error %q, want %q in it", rep.Error, want)
		}
	}
}

func TestStopDaemonDeadResolvesAtOnce(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b", mode: stopSilent})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)

	type result struct {
		rep *proto.APIStopReply
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := ts.cl.Stop(context.Background(), "demo", proto.APIStopRequest{Grace: "20s"})
		done <- result{rep, err}
	}()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if len(f.stopRequests()) == 0 {
			return fmt.Errorf("no stop received yet")
		}
		return nil
	})
	crashed := time.Now()
	f.crash()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("stop did not return within 5s of the daemon's death")
	}
	if r.err != nil {
		t.Fatalf("stop: %v", r.err)
	}
	if took := time.Since(crashed); took > 1500*time.Millisecond {
		t.Errorf("stop returned %s after the crash, want about 1s at most", took)
	}
	rep := r.rep
	if rep.Status != proto.DataflowFailed {
		t.Errorf("status %s, want failed", rep.Status)
	}
	for _, n := range rep.Nodes {
		if n.Status != proto.NodeLost || !strings.Contains(n.Outcome, "daemon daemon-b dead since") {
			t.Errorf("node %s: %s (%s), want lost naming the daemon", n.ID, n.Status, n.Outcome)
		}
	}
	if !strings.HasPrefix(rep.Error, `2 nodes lost: daemon "daemon-b" confirmed dead`) {
		t.Errorf("error %q", rep.Error)
	}
	t.Logf("stop after crash: %s", rep.Error)

	ms, err := ts.cl.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Role != "coordinator" || ms[1].Name != "daemon-b" || ms[1].Status != proto.MemberDead {
		t.Errorf("members %+v", ms)
	}
}

func TestStopWhileDaemonAway(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-away"})
	rep := startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)

	running := f.running()
	f.disconnect()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if ts.srv.session("daemon-away") != nil {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	// The control port still accepts connections: the daemon is not proven dead, so
	// the stop waits for it until its deadline.
	srep, elapsed := stopDF(t, ts, "demo", proto.APIStopRequest{Grace: "200ms", Timeout: "1s"})
	if elapsed > 3*time.Second || len(srep.Unconfirmed) != 1 || !strings.Contains(srep.Error, "not connected") {
		t.Fatalf("stop of a dataflow on an absent daemon: %+v after %s", srep, elapsed)
	}

	// When it comes back, the stop intent is handed over and applied.
	reply := f.reconnect(ts.srv.DaemonAddr(), running)
	if len(reply.StopDataflows) != 1 || reply.StopDataflows[0] != rep.ID {
		t.Fatalf("register reply %+v, want the stop of %s", reply, rep.ID)
	}
	if len(reply.KillDataflows) != 0 {
		t.Errorf("kill %v, want none", reply.KillDataflows)
	}
	// The fake applies it as a daemon would, and reports.
	for _, n := range running {
		f.report(n.DataflowID, n.NodeID, proto.NodeStopped, "stopped", 0)
	}
	waitStatus(t, ts, "demo", proto.DataflowFinished, proto.NodeStopped)
}

func TestStopDetach(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", mode: stopSilent})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	rep, elapsed := stopDF(t, ts, "demo", proto.APIStopRequest{Detach: true})
	if elapsed > time.Second || rep.Status != proto.DataflowStopping {
		t.Fatalf("detached stop: %+v after %s", rep, elapsed)
	}
	if len(f.stopRequests()) != 1 {
		t.Errorf("stops %+v", f.stopRequests())
	}
	f.report(rep.ID, "source", proto.NodeStopped, "", 0)
	f.report(rep.ID, "sink", proto.NodeKilled, "", 0)
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		d, err := ts.cl.Get(context.Background(), "demo")
		if err != nil {
			return err
		}
		if d.Status != proto.DataflowFinished {
			return fmt.Errorf("status %s", d.Status)
		}
		if d.Nodes[1].Outcome != "killed after grace" || !strings.Contains(d.Reason, "1 node killed after grace") {
			return fmt.Errorf("sink outcome %q, reason %q", d.Nodes[1].Outcome, d.Reason)
		}
		return nil
	})
}

func TestStopUnknown(t *testing.T) {
	ts := startServer(t, nil)
	_, err := ts.cl.Stop(context.Background(), "nope", proto.APIStopRequest{})
	if err == nil || !strings.Contains(err.Error(), `no dataflow "nope"`) {
		t.Fatalf("stop of an unknown dataflow: %v", err)
	}
}

func TestConcurrentStopsJoin(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", mode: stopSilent})
	demo := startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)

	first := make(chan *proto.APIStopReply, 1)
	go func() {
		rep, err := ts.cl.Stop(context.Background(), "demo", proto.APIStopRequest{Grace: "2s", Timeout: "5s"})
		if err != nil {
			t.Error(err)
		}
		first <- rep
	}()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if len(f.stopRequests()) == 0 {
			return fmt.Errorf("no stop yet")
		}
		return nil
	})
	second := make(chan *proto.APIStopReply, 1)
	go func() {
		rep, err := ts.cl.Stop(context.Background(), "demo", proto.APIStopRequest{Force: true})
		if err != nil {
			t.Error(err)
		}
		second <- rep
	}()
	// The forced second stop escalates the running one; the daemon then reports.
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		stops := f.stopRequests()
		if len(stops) != 2 || !stops[1].Force {
			return fmt.Errorf("stops %+v", stops)
		}
		return nil
	})
	f.report(demo.ID, "source", proto.NodeKilled, "", 0)
	f.report(demo.ID, "sink", proto.NodeKilled, "", 0)
	for i, ch := range []chan *proto.APIStopReply{first, second} {
		select {
		case rep := <-ch:
			if rep == nil || rep.Status != proto.DataflowFinished {
				t.Errorf("stop reply %+v", rep)
			}
			// The second says it joined the first, whose grace applied.
			if i == 0 && rep != nil && rep.Joined != "" {
				t.Errorf("first stop says it joined: %q", rep.Joined)
			}
			if i == 1 && rep != nil && (!strings.HasPrefix(rep.Joined, "joined the stop in progress since ") ||
				!strings.HasSuffix(rep.Joined, " (grace 2s), now forced by this request")) {
				t.Errorf("second stop: joined %q", rep.Joined)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("a stop did not return after the outcomes arrived")
		}
	}
}

// A timeout shorter than grace + kill window would cut the grace short with a forced
// kill that looks clean: it is refused unless the stop is forced.
func TestStopTimeoutShorterThanGrace(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning)
	_, err := ts.cl.Stop(context.Background(), "demo", proto.APIStopRequest{Grace: "10s", Timeout: "2s"})
	if client.StatusOf(err) != 400 || !strings.Contains(err.Error(), "timeout 2s is shorter than grace 10s + kill window 5s") {
		t.Fatalf("stop with a short timeout: %v (status %d)", err, client.StatusOf(err))
	}
	if n := len(f.stopRequests()); n != 0 {
		t.Fatalf("a refused stop sent %d stop requests", n)
	}
	rep, _ := stopDF(t, ts, "demo", proto.APIStopRequest{Grace: "10s", Timeout: "2s", Force: true})
	if rep.Status != proto.DataflowFinished {
		t.Errorf("forced stop %+v", rep)
	}
}
