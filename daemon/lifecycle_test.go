package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/doractl/doractl/internal/procfs"
	"github.com/doractl/doractl/internal/testutil"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/proto"
)

func TestCoordinatorLossKeepsNodesRunning(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	const df = "df-reconnect"
	spawn(t, f, df, rustNode(20*time.Millisecond), statusNode(), sinkNode("rust-sink", bin("sink")), exitNode("short", 4, 1500*time.Millisecond))
	pids := map[string]int{}
	for _, n := range []string{"rust-node", "rust-status-node", "rust-sink", "short"} {
		pids[n] = f.waitStatus(t, df, n, proto.NodeRunning, 10*time.Second).PID
	}
	// The coordinator goes away; "short" exits meanwhile.
	f.setRefuse(true)
	f.dropLink()
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if procAlive(pids["short"]) {
			return fmt.Errorf("short still running")
		}
		return nil
	})
	before := len(f.logs0(t, df, "rust-sink"))
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if n := len(f.logs0(t, df, "rust-sink")); n <= before {
			return fmt.Errorf("sink log stuck at %d bytes while the coordinator is away", n)
		}
		return nil
	})
	for _, n := range []string{"rust-node", "rust-status-node", "rust-sink"} {
		if !procAlive(pids[n]) {
			t.Fatalf("%s died with the coordinator link", n)
		}
	}

	// It comes back: the daemon registers again with what it runs, then reports the
	// outcome it could not send.
	f.setRefuse(false)
	reg := f.waitRegister(t, 2, 10*time.Second)
	running := map[string]int{}
	for _, rn := range reg.Running {
		if rn.DataflowID == df {
			running[rn.NodeID] = rn.PID
		}
	}
	for _, n := range []string{"rust-node", "rust-status-node", "rust-sink"} {
		if running[n] != pids[n] {
			t.Fatalf("re-register lists %s with pid %d, want %d (running: %+v)", n, running[n], pids[n], reg.Running)
		}
	}
	if _, ok := running["short"]; ok {
		t.Fatal("re-register lists a node that has exited")
	}
	st := f.waitStatus(t, df, "short", proto.NodeFailed, 5*time.Second)
	if st.Outcome != "failed (exit 4)" {
		t.Fatalf("short: %+v", st)
	}
	if h := f.history(df, "short"); h[len(h)-1].session != 2 {
		t.Fatalf("the outcome should arrive on the second session: %+v", h)
	}
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: df}, &ack)
	f.waitStatus(t, df, "rust-sink", proto.NodeStopped, 5*time.Second)
}

// logs0 reads a log straight from the daemon's state folder (the coordinator link may be down).
func (f *fakeCoord) logs0(t testing.TB, df, node string) string {
	t.Helper()
	f.mu.Lock()
	dir := f.stateDir
	f.mu.Unlock()
	b, _ := os.ReadFile(filepath.Join(dir, dataflowsDir, df, node+".log"))
	return string(b)
}

func TestRegisterReplyFencesAndStops(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	spawn(t, f, "df-fenced", stubbornNode("s", false))
	spawn(t, f, "df-stop", rustNode(50*time.Millisecond))
	spawn(t, f, "df-keep", rustNode(50*time.Millisecond))
	f.waitStatus(t, "df-fenced", "s", proto.NodeRunning, 10*time.Second)
	f.waitStatus(t, "df-stop", "rust-node", proto.NodeRunning, 10*time.Second)
	f.waitStatus(t, "df-keep", "rust-node", proto.NodeRunning, 10*time.Second)

	f.mu.Lock()
	f.reply = proto.RegisterReply{KillDataflows: []string{"df-fenced"}, StopDataflows: []string{"df-stop"}}
	f.mu.Unlock()
	f.dropLink()
	f.waitRegister(t, 2, 10*time.Second)
	if st := f.waitStatus(t, "df-fenced", "s", proto.NodeKilled, 5*time.Second); !strings.Contains(st.Outcome, "fenced") {
		t.Fatalf("fenced node: %+v", st)
	}
	f.waitStatus(t, "df-stop", "rust-node", proto.NodeStopped, 5*time.Second)
	if st := f.status("df-keep", "rust-node"); st.Status != proto.NodeRunning {
		t.Fatalf("an unrelated dataflow was touched: %+v", st)
	}

	// A kill request fences too.
	var ack proto.Ack
	f.mustRequest(t, proto.TypeKill, &proto.KillRequest{DataflowIDs: []string{"df-keep", "df-unknown"}}, &ack)
	f.waitStatus(t, "df-keep", "rust-node", proto.NodeKilled, 5*time.Second)
}

func TestDestroyStopsEverythingAndReturns(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	d := startDaemon(t, f, testConfig(t, f))
	spawn(t, f, "df-a", rustNode(20*time.Millisecond), statusNode())
	spawn(t, f, "df-b", stubbornNode("s", false), proto.NodeSpec{ID: "dyn", Path: "dynamic"})
	pid := f.waitStatus(t, "df-b", "s", proto.NodeRunning, 10*time.Second).PID
	f.waitStatus(t, "df-a", "rust-status-node", proto.NodeRunning, 10*time.Second)
	f.waitStatus(t, "df-b", "dyn", proto.NodeWaiting, 10*time.Second)

	var ack proto.Ack
	start := time.Now()
	f.mustRequest(t, proto.TypeDestroy, &proto.DestroyRequest{Grace: 500 * time.Millisecond}, &ack)
	if err := d.wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run after destroy: %v", err)
	}
	t.Logf("destroy took %s", time.Since(start))
	for _, want := range []struct{ df, node, status string }{
		{"df-a", "rust-node", proto.NodeStopped},
		{"df-a", "rust-status-node", proto.NodeStopped},
		{"df-b", "s", proto.NodeKilled},
		{"df-b", "dyn", proto.NodeNeverConnected},
	} {
		// Written before Run returned: at most still in flight.
		f.waitStatus(t, want.df, want.node, want.status, 2*time.Second)
	}
	if err := gone(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.StateDir(), pidFileName)); !os.IsNotExist(err) {
		t.Fatalf("pid file left behind: %v", err)
	}
}

func TestCancelStopsNodesAndForceKills(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	cfg.DefaultGrace = time.Minute
	force, forceNow := context.WithCancel(context.Background())
	defer forceNow()
	cfg.ForceCtx = force
	d := startDaemon(t, f, cfg)
	spawn(t, f, "df", rustNode(20*time.Millisecond), stubbornNode("s", false))
	pid := f.waitStatus(t, "df", "s", proto.NodeRunning, 10*time.Second).PID
	f.waitStatus(t, "df", "rust-node", proto.NodeRunning, 10*time.Second)

	d.cancel() // first signal: graceful
	f.waitStatus(t, "df", "rust-node", proto.NodeStopped, 5*time.Second)
	select {
	case <-d.done:
		t.Fatal("Run returned while a stubborn node is within its grace")
	default:
	}
	forceNow() // second signal: force
	if err := d.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := f.waitStatus(t, "df", "s", proto.NodeKilled, 2*time.Second); st.Outcome != "killed (forced)" {
		t.Fatalf("stubborn after force: %+v", st)
	}
	if err := gone(pid); err != nil {
		t.Fatal(err)
	}
}

func TestStateDirIsExclusive(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second daemon on the same state folder: %v", err)
	}
}

func TestOrphansOfACrashedDaemonAreKilled(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	f.mu.Lock()
	f.stateDir = filepath.Join(cfg.StateDir, cfg.Name)
	f.mu.Unlock()

	// A daemon in its own process spawns a stubborn node, then dies by SIGKILL.
	conf, _ := json.Marshal(childConfig{Name: cfg.Name, Coordinator: f.addr(), StateDir: cfg.StateDir})
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDaemonEnv+"="+string(conf))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill() }()
	first := f.waitRegister(t, 1, 30*time.Second)
	spawn(t, f, "df-orphan", stubbornNode("s", true))
	pid := f.waitStatus(t, "df-orphan", "s", proto.NodeRunning, 10*time.Second).PID
	var childPid int
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := fmt.Sscanf(lineWith(f.logs0(t, "df-orphan", "s"), "child pid "), "child pid %d", &childPid)
		return err
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if !procAlive(pid) || !procAlive(childPid) {
		t.Fatal("the node died with its daemon: nothing to clean up")
	}
	// Node and child carry the marks killUnrecorded finds them by, were nodes.json to miss them.
	for _, p := range []int{pid, childPid} {
		env := procfs.Environ(p)
		if envValue(env, proto.EnvDaemonEpoch) == "" || !strings.HasPrefix(envValue(env, proto.EnvDaemonAddr), "unix:") {
			t.Errorf("process %d lacks the daemon's marks in its environment", p)
		}
	}

	// The next life of the daemon kills them before anything else.
	d := startDaemon(t, f, cfg)
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if err := gone(pid); err != nil {
			return err
		}
		return gone(childPid)
	})
	second := f.waitRegister(t, 2, time.Second)
	if second.BootEpoch == first.BootEpoch || second.BootEpoch != d.BootEpoch() || len(second.Running) != 0 {
		t.Fatalf("second life registers epoch %d (first %d) running %+v", second.BootEpoch, first.BootEpoch, second.Running)
	}
}

func lineWith(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestKillOrphansSparesReusedPids(t *testing.T) {
	t.Parallel()
	start := func() *exec.Cmd {
		c := exec.Command("sleep", "60")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	ours, reused, current := start(), start(), start()
	st, err := procfs.ReadStat(ours.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := procfs.ReadStat(reused.Process.Pid)
	st3, _ := procfs.ReadStat(current.Process.Pid)
	path := filepath.Join(t.TempDir(), nodesFileName)
	recs := []nodeRecord{
		{Dataflow: "df", Node: "ours", PID: ours.Process.Pid, PGID: ours.Process.Pid, StartTime: st.StartTime, Epoch: 1},
		// Same pid, another process: the start time does not match.
		{Dataflow: "df", Node: "reused", PID: reused.Process.Pid, PGID: reused.Process.Pid, StartTime: st2.StartTime + 1, Epoch: 1},
		// Recorded by this very life of the daemon: not an orphan.
		{Dataflow: "df", Node: "current", PID: current.Process.Pid, PGID: current.Process.Pid, StartTime: st3.StartTime, Epoch: 2},
	}
	if err := writeRecords(path, recs); err != nil {
		t.Fatal(err)
	}
	killed, err := killOrphans(path, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if len(killed) != 1 || killed[0].Node != "ours" {
		t.Fatalf("killed %+v, want only ours", killed)
	}
	_ = ours.Wait()
	if ws := ours.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("orphan ended with %v, want SIGKILL", ours.ProcessState)
	}
	if !procAlive(reused.Process.Pid) || !procAlive(current.Process.Pid) {
		t.Fatal("a process that is not an orphan of ours was killed")
	}
	if left, _ := readRecords(path); len(left) != 0 {
		t.Fatalf("records left after cleanup: %+v", left)
	}
}

func TestInProcessDialer(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	cfg.CoordinatorAddr = ""
	cfg.Dial = func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go f.serve(b)
		return a, nil
	}
	startDaemon(t, f, cfg)
	spawn(t, f, "df-pipe", rustNode(20*time.Millisecond), statusNode(), sinkNode("rust-sink", bin("sink")))
	f.waitLog(t, "df-pipe", "rust-sink", "sink received message: operator received random value", 15*time.Second)
	var ack proto.Ack
	f.mustRequest(t, proto.TypeStop, &proto.StopRequest{DataflowID: "df-pipe"}, &ack)
	f.waitStatus(t, "df-pipe", "rust-sink", proto.NodeStopped, 5*time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.registers) != 1 {
		t.Fatalf("%d registrations: the pipe link did not hold", len(f.registers))
	}
}

// A daemon that lost its coordinator link while shutting down does not register again:
// it would pass for alive (after destroy, with the next cluster's coordinator) and then
// vanish.
func TestShuttingDownDaemonDoesNotRegisterAgain(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	cfg.DefaultGrace = 1500 * time.Millisecond
	rd := startDaemon(t, f, cfg)
	const df = "df-shutdown"
	spawn(t, f, df, stubbornNode("stubborn", false))
	f.waitStatus(t, df, "stubborn", proto.NodeRunning, 10*time.Second)

	rd.cancel() // SIGTERM: the stubborn node keeps the shutdown busy for its grace
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !rd.isShutting() {
			return fmt.Errorf("not shutting down yet")
		}
		return nil
	})
	f.dropLink()
	if err := rd.wait(t, 20*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.mu.Lock()
	n := len(f.registers)
	f.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d registrations, want 1: the daemon registered again while shutting down", n)
	}
}

// KillLeftNodes kills what a gone daemon recorded, and nothing while a daemon holds the
// state folder.
func TestKillLeftNodes(t *testing.T) {
	t.Parallel()
	c := exec.Command("sleep", "60")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	st, err := procfs.ReadStat(c.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "daemon-a")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := nodeRecord{Dataflow: "df", Node: "left", PID: c.Process.Pid, PGID: c.Process.Pid, StartTime: st.StartTime, Epoch: 7}
	if err := writeRecords(filepath.Join(dir, nodesFileName), []nodeRecord{rec}); err != nil {
		t.Fatal(err)
	}

	// A daemon runs there: its nodes are its own.
	lock, err := lockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if killed, err := KillLeftNodes(dir, hclog.NewNullLogger()); err == nil || !strings.Contains(err.Error(), "in use by another daemon") || len(killed) != 0 {
		t.Fatalf("with the folder locked: killed %v, error %v; want a refusal", killed, err)
	}
	if !procAlive(c.Process.Pid) {
		t.Fatal("a running daemon's node was killed")
	}
	unlockStateDir(lock)

	killed, err := KillLeftNodes(dir, hclog.NewNullLogger())
	if err != nil || len(killed) != 1 || killed[0] != (LeftNode{Dataflow: "df", Node: "left", PID: c.Process.Pid}) {
		t.Fatalf("killed %+v, error %v; want the recorded node", killed, err)
	}
	_ = c.Wait()
	if ws := c.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("left node ended with %v, want SIGKILL", c.ProcessState)
	}
	if killed, err := KillLeftNodes(filepath.Join(t.TempDir(), "none"), hclog.NewNullLogger()); err != nil || len(killed) != 0 {
		t.Fatalf("a folder without records: %v %v", killed, err)
	}
}

// killUnrecorded kills what an earlier life of this folder's daemon started and never
// recorded, and nothing else: not this life's nodes, not another daemon's, not a
// process that merely has the socket address (a dynamic node a user started).
func TestKillUnrecorded(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "node.sock")
	start := func(env ...string) *exec.Cmd {
		c := exec.Command("sleep", "60")
		c.Env = append(os.Environ(), env...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	addr := proto.EnvDaemonAddr + "=unix:" + sock
	earlier := start(addr, proto.EnvDaemonEpoch+"=5", proto.EnvDataflowID+"=df", proto.EnvNodeID+"=escaped")
	current := start(addr, proto.EnvDaemonEpoch+"=7")
	other := start(proto.EnvDaemonAddr+"=unix:"+sock+".other", proto.EnvDaemonEpoch+"=5")
	dynamic := start(addr)
	killed := killUnrecorded(sock, 7, hclog.NewNullLogger())
	if len(killed) != 1 || killed[0] != (LeftNode{Dataflow: "df", Node: "escaped", PID: earlier.Process.Pid}) {
		t.Fatalf("killed %+v, want only the earlier life's process", killed)
	}
	_ = earlier.Wait()
	if ws := earlier.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("earlier life's process ended with %v, want SIGKILL", earlier.ProcessState)
	}
	for name, c := range map[string]*exec.Cmd{"current": current, "other daemon's": other, "dynamic": dynamic} {
		if !procAlive(c.Process.Pid) {
			t.Errorf("the %s process was killed", name)
		}
	}
}
