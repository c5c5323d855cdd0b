package daemon

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/internal/procfs"
	"github.com/doractl/doractl/internal/testutil"

	"github.com/doractl/doractl/node"
	"github.com/doractl/doractl/proto"
)

func TestRustDataflowRoutesAndStops(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	d := startDaemon(t, f, testConfig(t, f))
	if reg := f.waitRegister(t, 1, time.Second); reg.ControlAddr != d.ControlAddr() || reg.BootEpoch != d.BootEpoch() || reg.Protocol != proto.ProtocolVersion {
		t.Fatalf("register %+v does not describe the daemon (control %s, epoch %d)", reg, d.ControlAddr(), d.BootEpoch())
	}
	const df = "df-rust"
	spawn(t, f, df, rustNode(10*time.Millisecond), statusNode(), sinkNode("rust-sink", bin("sink")))
	for _, n := range []string{"rust-node", "rust-status-node", "rust-sink"} {
		if st := f.waitStatus(t, df, n, proto.NodeRunning, 10*time.Second); st.PID <= 0 {
			t.Fatalf("%s running without a pid: %+v", n, st)
		}
	}
	text := f.waitLog(t, df, "rust-sink", "sink received message: operator received random value 0x", 15*time.Second)
	if !regexp.MustCompile(`operator received random value 0x[0-9a-f]+ after \d+ ticks`).MatchString(text) {
		t.Fatalf("sink log does not look right:\n%s", tail(text, 500))
	}
	f.waitLog(t, df, "rust-node", "sending 0x", time.Second)

	// The last lines only, once the log has more than that.
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var all proto.LogsReply
		f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "rust-sink"}, &all)
		if n := strings.Count(string(all.Data), "\n"); n < 3 {
			return fmt.Errorf("sink log has %d lines", n)
		}
		return nil
	})
	var rep proto.LogsReply
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "rust-sink", Offset: -1, Tail: 2}, &rep)
	if lines := strings.Count(string(rep.Data), "\n"); lines != 2 || rep.Ended {
		t.Fatalf("tail 2: %d lines (ended %v):\n%s", lines, rep.Ended, rep.Data)
	}

	start := time.Now()
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: 10 * time.Second}, &ack)
	for _, n := range []string{"rust-node", "rust-status-node", "rust-sink"} {
		st := f.waitStatus(t, df, n, proto.NodeStopped, 5*time.Second)
		if st.Outcome != "stopped" {
			t.Fatalf("%s outcome %q, want stopped", n, st.Outcome)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cooperative nodes took %s to stop", took)
	}
	// After the outcome the log ends.
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var rep proto.LogsReply
		f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "rust-sink", Max: 8 << 20}, &rep)
		if !rep.Ended || rep.Status != proto.NodeStopped {
			return fmt.Errorf("logs ended %v status %q", rep.Ended, rep.Status)
		}
		// Its last line: the Stop event, or the close of its input when its producer,
		// stopped at the same time, was quicker (each Stop is sent on its own goroutine).
		if !strings.Contains(string(rep.Data), "received stop") && !strings.Contains(string(rep.Data), "all inputs closed, exiting") {
			return fmt.Errorf("sink log has no stop line")
		}
		return nil
	})
}

func TestStubbornNodesKilledAfterGrace(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	const df = "df-stubborn"
	nodes := []proto.NodeSpec{stubbornNode("stubborn-0", true), rustNode(50 * time.Millisecond)}
	for i := 1; i < 8; i++ {
		nodes = append(nodes, stubbornNode(fmt.Sprintf("stubborn-%d", i), false))
	}
	spawn(t, f, df, nodes...)
	pids := map[string]int{}
	for _, n := range nodes {
		pids[n.ID] = f.waitStatus(t, df, n.ID, proto.NodeRunning, 10*time.Second).PID
	}
	text := f.waitLog(t, df, "stubborn-0", "child pid ", 10*time.Second)
	child, err := strconv.Atoi(regexp.MustCompile(`child pid (\d+)`).FindStringSubmatch(text)[1])
	if err != nil {
		t.Fatal(err)
	}
	f.waitLog(t, df, "stubborn-0", "ignoring stop and SIGTERM", 10*time.Second)

	const grace, killAfter = time.Second, 500 * time.Millisecond
	start := time.Now()
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: grace, KillAfter: killAfter}, &ack)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("stop ack took %s: it must come at once", took)
	}
	// The daemon keeps serving while the nodes are being stopped.
	t0 := time.Now()
	f.waitLog(t, df, "stubborn-0", "received stop, ignoring it", 2*time.Second)
	if took := time.Since(t0); took > grace {
		t.Fatalf("logs request during a stop took %s", took)
	}
	if st := f.waitStatus(t, df, "rust-node", proto.NodeStopped, grace); st.Outcome != "stopped" {
		t.Fatalf("rust-node: %+v", st)
	}
	for _, n := range nodes[2:] {
		f.waitStatus(t, df, n.ID, proto.NodeKilled, grace+killAfter+5*time.Second)
	}
	st := f.waitStatus(t, df, "stubborn-0", proto.NodeKilled, 5*time.Second)
	took := time.Since(start)
	if st.Outcome != "killed after grace" || st.Signal != "SIGKILL" {
		t.Fatalf("stubborn outcome %q signal %q, want killed after grace by SIGKILL", st.Outcome, st.Signal)
	}
	if took < grace+killAfter {
		t.Fatalf("killed after %s, before grace + kill window %s", took, grace+killAfter)
	}
	for id, pid := range pids {
		if err := gone(pid); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	testutil.CheckFor(t, 2*time.Second, 20*time.Millisecond, func() error { return gone(child) })
}

func TestForceStopKillsAtOnce(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	const df = "df-force"
	spawn(t, f, df, stubbornNode("stubborn", false))
	pid := f.waitStatus(t, df, "stubborn", proto.NodeRunning, 10*time.Second).PID
	start := time.Now()
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: time.Minute, Force: true}, &ack)
	st := f.waitStatus(t, df, "stubborn", proto.NodeKilled, 3*time.Second)
	if st.Outcome != "killed (forced)" {
		t.Fatalf("outcome %q", st.Outcome)
	}
	t.Logf("forced kill took %s", time.Since(start))
	if err := gone(pid); err != nil {
		t.Fatal(err)
	}
}

func TestDynamicNodeNeverConnected(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	const df = "df-dyn-never"
	spawn(t, f, df, proto.NodeSpec{ID: "dyn", Path: "dynamic", Inputs: []proto.InputSpec{{ID: "tick", Timer: 20 * time.Millisecond}}})
	f.waitStatus(t, df, "dyn", proto.NodeWaiting, 5*time.Second)
	start := time.Now()
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: 30 * time.Second}, &ack)
	st := f.waitStatus(t, df, "dyn", proto.NodeNeverConnected, time.Second)
	if st.Outcome != "dynamic, never connected" {
		t.Fatalf("outcome %q", st.Outcome)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an unconnected dynamic node took %s to finish", took)
	}
}

func TestDynamicNodeGetsInputsAndStops(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	cfg.NodeListenAddr = "127.0.0.1:0"
	d := startDaemon(t, f, cfg)
	const df = "df-dyn"
	spawn(t, f, df, rustNode(20*time.Millisecond), statusNode(), sinkNode("rust-sink-dynamic", "dynamic"))
	f.waitStatus(t, df, "rust-sink-dynamic", proto.NodeWaiting, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := node.InitDynamicAt(ctx, d.NodeListenAddr(), "no-such-node"); err == nil || !strings.Contains(err.Error(), "no-such-node") {
		t.Fatalf("registering an unknown dynamic node: %v", err)
	}
	n, err := node.InitDynamicAt(ctx, d.NodeListenAddr(), "rust-sink-dynamic")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.DataflowID() != df || n.ID() != "rust-sink-dynamic" || fmt.Sprint(n.Inputs()) != "[message]" {
		t.Fatalf("registered as %s/%s inputs %v", n.DataflowID(), n.ID(), n.Inputs())
	}
	f.waitStatus(t, df, "rust-sink-dynamic", proto.NodeRunning, 5*time.Second)
	if _, err := node.InitDynamicAt(ctx, d.NodeListenAddr(), "rust-sink-dynamic"); err == nil ||
		!strings.Contains(err.Error(), "it is already connected in dataflow "+df) {
		t.Fatalf("a second program registering as the same dynamic node: %v", err)
	}

	got := 0
	for got < 3 {
		select {
		case ev, ok := <-n.Events():
			if !ok {
				t.Fatal("events closed")
			}
			if ev.Type == node.EventInput && ev.ID == "message" {
				if !strings.HasPrefix(string(ev.Data), "operator received random value 0x") {
					t.Fatalf("message %q", ev.Data)
				}
				got++
			}
		case <-ctx.Done():
			t.Fatalf("only %d messages reached the dynamic node", got)
		}
	}

	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: 10 * time.Second}, &ack)
	for ev := range n.Events() {
		if ev.Type == node.EventStop {
			break
		}
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	st := f.waitStatus(t, df, "rust-sink-dynamic", proto.NodeStopped, 3*time.Second)
	if st.Outcome != "stopped" {
		t.Fatalf("outcome %q", st.Outcome)
	}
	f.waitStatus(t, df, "rust-node", proto.NodeStopped, 5*time.Second)
	if _, err := node.InitDynamicAt(ctx, d.NodeListenAddr(), "rust-sink-dynamic"); err == nil ||
		!strings.Contains(err.Error(), "it already ran in dataflow "+df+" and ended") {
		t.Fatalf("registering a dynamic node that already ran: %v", err)
	}
}

func TestDynamicNodeThatStaysIsKilled(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	d := startDaemon(t, f, cfg)
	const df = "df-dyn-stays"
	spawn(t, f, df, proto.NodeSpec{ID: "dyn", Path: "dynamic"})
	f.waitStatus(t, df, "dyn", proto.NodeWaiting, 5*time.Second)
	// Through the unix socket, as a program on this machine may.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := node.InitDynamicAt(ctx, "unix:"+d.NodeSocket(), "dyn")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	f.waitStatus(t, df, "dyn", proto.NodeRunning, 5*time.Second)
	var ack proto.Ack
	start := time.Now()
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: 300 * time.Millisecond, KillAfter: 200 * time.Millisecond}, &ack)
	st := f.waitStatus(t, df, "dyn", proto.NodeKilled, 5*time.Second)
	if st.Outcome != "killed after grace (dynamic node did not disconnect)" {
		t.Fatalf("outcome %q", st.Outcome)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("killed after %s, before grace + window", took)
	}
	sawStop := false
	for ev := range n.Events() { // closes with the link
		sawStop = sawStop || ev.Type == node.EventStop
	}
	if !sawStop {
		t.Fatal("the dynamic node never got Stop")
	}
}

func TestSpawnFailuresAndExitOutcomes(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	dir := t.TempDir()
	writeFile(t, dir, "plain.sh", 0o755)

	// Nodes that cannot run here are refused before anything starts, all named in one error.
	refused := &proto.SpawnRequest{DataflowID: "df-refused", Name: "df-refused", Nodes: []proto.NodeSpec{
		{ID: "missing", Path: dir + "/no-such-binary"},
		{ID: "not-exec", Path: writeFile(t, dir, "plain", 0o644)},
		{ID: "bad-wd", Path: bin("exit-code"), WorkingDir: dir + "/nowhere"},
		{ID: "bare", Path: "no-such-command-anywhere"},
		exitNode("fine", 0, 0),
	}}
	err := f.request(proto.TypeSpawn, refused, &proto.Ack{})
	if err == nil {
		t.Fatal("spawn of nodes that cannot run was acknowledged")
	}
	t.Logf("refused: %v", err)
	for _, want := range []string{`node "missing": executable: `, "no-such-binary", `node "not-exec": executable `, "not executable",
		`node "bad-wd": working directory`, `node "bare": no-such-command-anywhere`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"fine"`) {
		t.Errorf("refusal names a node that can run: %q", err)
	}
	if st := f.status("df-refused", "fine"); st.Status != "" {
		t.Fatalf("a node of a refused spawn reported %+v", st)
	}

	const df = "df-outcomes"
	spawn(t, f, df,
		// Passes the check, fails in exec: its interpreter does not exist.
		proto.NodeSpec{ID: "bad-interp", Path: writeScript(t, dir, "bad-interp", "#!/no/such/interpreter\n")},
		exitNode("exit-3", 3, 0),
		exitNode("exit-0", 0, 0),
		proto.NodeSpec{ID: "segv", Path: "shell", Args: []string{"kill -SEGV $$"}},
		proto.NodeSpec{ID: "shell-ok", Path: "shell", Args: []string{"echo", "hello from shell"}},
		proto.NodeSpec{ID: "relative", Path: "./plain.sh", WorkingDir: dir},
	)
	if st := f.waitStatus(t, df, "bad-interp", proto.NodeFailed, 5*time.Second); !strings.HasPrefix(st.Outcome, "failed (spawn: ") {
		t.Fatalf("bad-interp: outcome %q, want failed (spawn: ...)", st.Outcome)
	}
	if text := f.logs(t, df, "bad-interp"); !strings.Contains(text, "could not be started") {
		t.Fatalf("log of a node that could not start: %q", text)
	}
	if st := f.waitStatus(t, df, "exit-3", proto.NodeFailed, 5*time.Second); st.Outcome != "failed (exit 3)" || st.ExitCode != 3 {
		t.Fatalf("exit-3: %+v", st)
	}
	if st := f.waitStatus(t, df, "segv", proto.NodeFailed, 5*time.Second); st.Outcome != "failed (signal SIGSEGV)" {
		t.Fatalf("segv: %+v", st)
	}
	for _, id := range []string{"exit-0", "shell-ok", "relative"} {
		if st := f.waitStatus(t, df, id, proto.NodeFinished, 5*time.Second); st.Outcome != "finished" {
			t.Fatalf("%s: %+v", id, st)
		}
	}
	f.waitLog(t, df, "shell-ok", "hello from shell", time.Second)

	// The daemon is still fine: a new dataflow runs.
	spawn(t, f, "df-after", exitNode("ok", 0, 0))
	f.waitStatus(t, "df-after", "ok", proto.NodeFinished, 5*time.Second)
	// A spawn request repeated is acknowledged without a second start.
	spawn(t, f, "df-after", exitNode("ok", 0, 0))
	spawn(t, f, "df-sync", exitNode("ok", 0, 0))
	f.waitStatus(t, "df-sync", "ok", proto.NodeFinished, 5*time.Second)
	runs := 0
	for _, h := range f.history("df-after", "ok") {
		if h.Status == proto.NodeRunning {
			runs++
		}
	}
	if runs != 1 {
		t.Fatalf("node reported running %d times: a repeated spawn must not start it again", runs)
	}
}

func TestLogsRequests(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	const df = "df-logs"
	spawn(t, f, df, proto.NodeSpec{ID: "ticker", Path: "shell", Args: []string{"sleep 0.5; echo one; sleep 0.5; echo two; sleep 30"}})
	f.waitStatus(t, df, "ticker", proto.NodeRunning, 5*time.Second)

	err := f.request(proto.TypeLogs, &proto.LogsRequest{DataflowID: "nope", NodeID: "ticker"}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown dataflow: %v", err)
	}
	err = f.request(proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "nobody"}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nobody"`) || !strings.Contains(err.Error(), df) {
		t.Fatalf("unknown node: %v", err)
	}

	// Long poll: wait for the first bytes.
	var rep proto.LogsReply
	start := time.Now()
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "ticker", Wait: 5 * time.Second}, &rep)
	if string(rep.Data) != "one\n" || rep.Next != 4 || rep.Ended {
		t.Fatalf("first poll: %+v", rep)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("long poll answered after %s", took)
	}
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "ticker", Offset: rep.Next, Wait: 5 * time.Second}, &rep)
	if string(rep.Data) != "two\n" || rep.Next != 8 {
		t.Fatalf("second poll: %+v", rep)
	}
	// Nothing new: the poll ends at its deadline with no data.
	start = time.Now()
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "ticker", Offset: rep.Next, Wait: 300 * time.Millisecond}, &rep)
	if len(rep.Data) != 0 || rep.Ended || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("idle poll: %+v after %s", rep, time.Since(start))
	}
	// Max bounds a reply.
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "ticker", Max: 2}, &rep)
	if string(rep.Data) != "on" || rep.Next != 2 {
		t.Fatalf("max 2: %+v", rep)
	}
	// A waiting poll is answered as soon as the node ends.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = f.request(proto.TypeStop, &proto.StopRequest{DataflowID: df, Force: true}, nil)
	}()
	start = time.Now()
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: "ticker", Offset: 8, Wait: 10 * time.Second}, &rep)
	if !rep.Ended || time.Since(start) > 5*time.Second {
		t.Fatalf("poll on an ending node: %+v after %s", rep, time.Since(start))
	}
}

// A stop leaves nothing of a node behind, not even a descendant that left the node's
// process group (setsid).
func TestStopKillsDescendantsOutsideTheGroup(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	const df = "df-setsid"
	marker := fmt.Sprintf("DORACTL_TEST_ESCAPE=%d", time.Now().UnixNano())
	spawn(t, f, df, proto.NodeSpec{ID: "escaper", Path: proto.ShellNodePath,
		Args: []string{"setsid sleep 300 & sleep 300"}, Env: map[string]string{"DORACTL_TEST_ESCAPE": strings.TrimPrefix(marker, "DORACTL_TEST_ESCAPE=")}})
	f.waitStatus(t, df, "escaper", proto.NodeRunning, 10*time.Second)
	escaped := func() []int {
		return procfs.Find(func(pid int) bool {
			return slices.Contains(procfs.Environ(pid), marker) && strings.HasPrefix(procfs.Cmdline(pid), "sleep")
		})
	}
	var pgid int
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, pid := range escaped() {
			if st, err := procfs.ReadStat(pid); err == nil && st.Pgrp == pid {
				pgid = pid
				return nil
			}
		}
		return fmt.Errorf("the setsid child has not started yet (%v)", escaped())
	})
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df, Grace: 200 * time.Millisecond}, &ack)
	f.waitStatus(t, df, "escaper", proto.NodeKilled, 10*time.Second)
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if left := escaped(); len(left) > 0 {
			return fmt.Errorf("processes of the node left after its stop: %v (setsid one %d)", left, pgid)
		}
		return nil
	})
}
