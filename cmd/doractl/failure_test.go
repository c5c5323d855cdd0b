package main

// Failure semantics, end to end: real coordinator and daemon processes started by
// `doractl up`, real memberlist, kill -9, SIGSTOP/SIGCONT and SIGTERM. Every test polls
// with a deadline (checkFor) and asserts outcomes; sleeps only shape the fault (how long
// a process stays frozen), never decide a result. The tests run one at a time: they
// measure timings on shared cores.

import (
	"fmt"
	"github.com/doractl/doractl/internal/procfs"
	"github.com/doractl/doractl/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts real processes")
	}
}

// hangDataflow is dora's hang: two dynamic nodes that never connect and 50 nodes that
// ignore both Stop and SIGTERM, all on one daemon.
func hangDataflow() string {
	var b strings.Builder
	b.WriteString("nodes:\n")
	for i := range 2 {
		fmt.Fprintf(&b, "  - id: dynamic-%d\n    path: dynamic\n    inputs:\n      tick: dora/timer/millis/100\n", i)
	}
	for i := range 50 {
		fmt.Fprintf(&b, "  - id: stubborn-%02d\n    path: BIN/stubborn\n", i)
	}
	return b.String()
}

// The dora hang, reproduced and fixed: the stop returns after grace + kill window with
// every outcome, and the busy daemon is never suspected meanwhile.
func TestHangStopStubbornAndDynamic(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("hang.yml", hangDataflow())
	e.up("--profile", "lan") // the default profile: the busy daemon must survive it
	daemonName := "daemon-" + machineIDs(1)[0]
	e.mustRun("start", df, "--name", "hang", "--detach")
	e.waitRunning("hang", 52, 60*time.Second)

	w := e.watchVerdicts(daemonName)
	const grace = 5 * time.Second
	rep, r, el := e.stopJSON("hang", "--grace-duration", grace.String())
	w.assertAlive(t)
	t.Logf("stop of 52 nodes (grace %s) answered in %s", grace, el.Round(time.Millisecond))

	killed, never := 0, 0
	for _, n := range rep.Nodes {
		switch {
		case n.Status == proto.NodeKilled && n.Outcome == "killed after grace":
			killed++
		case n.Status == proto.NodeNeverConnected && n.Outcome == "dynamic, never connected":
			never++
		default:
			t.Errorf("node %s ended %s (%s)", n.ID, n.Status, n.Outcome)
		}
	}
	if killed != 50 || never != 2 || len(rep.Nodes) != 52 {
		t.Fatalf("stop reply: %d killed after grace, %d never connected, %d nodes: %s", killed, never, len(rep.Nodes), r)
	}
	if r.code != 0 || rep.Status != proto.DataflowFinished {
		t.Fatalf("stop: %s", r)
	}
	// SIGTERM at grace, SIGKILL half the grace later: 7.5 s, plus scheduling on 2 cores.
	if min, max := grace+grace/2, grace+grace/2+8*time.Second; el < min || el > max {
		t.Fatalf("stop took %s, want between %s and %s", el, min, max)
	}
	for id, pid := range nodePIDs(e.dataflow("hang")) {
		if pidAlive(pid) {
			t.Errorf("node %s (pid %d) still runs after the stop", id, pid)
		}
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

const spreadDataflow = `nodes:
  - id: on-a
    path: BIN/rust-sink
    inputs:
      tick: dora/timer/millis/50
    deploy:
      machine: a
  - id: on-b
    path: BIN/rust-sink
    inputs:
      tick: dora/timer/millis/50
    deploy:
      machine: b
  - id: on-c
    path: BIN/rust-sink
    inputs:
      tick: dora/timer/millis/50
    deploy:
      machine: c
  - id: stubborn-c
    path: BIN/stubborn
    deploy:
      machine: c
`

// kill -9 of a daemon during a stop's grace: its pending nodes resolve lost as soon as
// the death is confirmed (the process is provably gone), the rest finish normally, and
// the stop answers long before its grace, let alone its timeout.
func TestFailureDeathDuringStop(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("spread.yml", spreadDataflow)
	e.upMachines("a", "b", "c")
	e.mustRun("start", df, "--name", "spread", "--detach")
	d := e.waitRunning("spread", 4, 30*time.Second)
	for _, n := range d.Nodes {
		if want := "daemon-" + strings.TrimPrefix(strings.TrimPrefix(n.ID, "stubborn-"), "on-"); n.Daemon != want {
			t.Fatalf("node %s placed on %s, want %s", n.ID, n.Daemon, want)
		}
	}

	const grace, timeout = 10 * time.Second, 25 * time.Second
	stop := e.stopAsync("spread", "--grace-duration", grace.String())
	// Wait until the stop is under way: the cooperative nodes are stopped, the stubborn
	// one waits for its grace.
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		d := e.dataflow("spread")
		if d.Status != proto.DataflowStopping {
			return fmt.Errorf("dataflow %s", d.Status)
		}
		for _, n := range d.Nodes {
			if n.ID != "stubborn-c" && !proto.IsFinal(n.Status) {
				return fmt.Errorf("node %s still %s", n.ID, n.Status)
			}
		}
		return nil
	})
	if stop.finished() {
		t.Fatal("the stop returned before the stubborn node's grace")
	}
	killedAt := time.Now()
	e.signal("daemon-c", syscall.SIGKILL)
	rep, r, _ := stop.wait(t, timeout+10*time.Second)
	answered := time.Since(killedAt)
	t.Logf("kill -9 daemon-c -> stop answered in %s (stop took %s, grace %s)", answered.Round(time.Millisecond), rep.Elapsed, grace)

	if answered > 3*time.Second {
		t.Fatalf("stop answered %s after the kill, want within the death's confirmation", answered)
	}
	if r.code == 0 || rep.Error == "" || strings.Contains(strings.TrimSpace(r.stderr), "\n") ||
		!strings.Contains(r.stderr, "daemon-c") {
		t.Fatalf("stop: want non-zero exit with a one-line reason naming daemon-c: %s", r)
	}
	got := map[string]proto.NodeInfo{}
	for _, n := range rep.Nodes {
		got[n.ID] = n
	}
	if len(got) != 4 {
		t.Fatalf("stop reply lists %d nodes, want 4: %+v", len(got), rep.Nodes)
	}
	for _, id := range []string{"on-a", "on-b"} {
		if n := got[id]; n.Status != proto.NodeStopped {
			t.Errorf("node %s: %+v, want stopped", id, n)
		}
	}
	// on-c stopped before the kill; stubborn-c was waiting for its grace.
	if n := got["on-c"]; n.Status != proto.NodeStopped {
		t.Errorf("node on-c: %+v, want stopped", n)
	}
	if n := got["stubborn-c"]; n.Status != proto.NodeLost || !strings.Contains(n.Outcome, "daemon-c") ||
		!strings.Contains(n.Outcome, "refuses connections") {
		t.Errorf("node stubborn-c: %+v, want lost naming daemon-c and how its death was confirmed", n)
	}
	if d := e.dataflow("spread"); d.Status != proto.DataflowFailed || !strings.Contains(d.Reason, "daemon-c") {
		t.Errorf("dataflow after the stop: %s (%s)", d.Status, d.Reason)
	}
	// members shows the verdict, since and how, as JSON and as a table.
	m, _ := e.member("daemon-c")
	if m.Status != proto.MemberDead || m.Since.IsZero() || !strings.Contains(m.Reason, "refuses connections") {
		t.Errorf("member daemon-c: %+v", m)
	}
	for _, name := range []string{"daemon-a", "daemon-b"} {
		if m, _ := e.member(name); m.Status != proto.MemberAlive {
			t.Errorf("member %s: %+v", name, m)
		}
	}
	table := e.mustRun("members").stdout
	if !strings.Contains(table, "daemon-c") || !strings.Contains(table, "dead") || !strings.Contains(table, "refuses connections") {
		t.Errorf("members table does not explain the death:\n%s", table)
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

// A 3 s freeze on the default lan profile (below its measured tolerance, see
// docs/failure-model.md) is not a death, and an operation waiting on the frozen daemon
// completes normally.
func TestStallBelowTolerance(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("stall.yml", stubbornDataflow)
	e.up("--profile", "lan")
	name := "daemon-" + machineIDs(1)[0]
	e.mustRun("start", df, "--name", "stall", "--detach")
	e.waitRunning("stall", 3, 30*time.Second)

	w := e.watchVerdicts(name)
	e.signal(name, syscall.SIGSTOP)
	stop := e.stopAsync("stall", "--grace-duration", "1s")
	time.Sleep(3 * time.Second) // the freeze itself
	e.signal(name, syscall.SIGCONT)
	rep, r, el := stop.wait(t, 30*time.Second)
	// Stay a few probe rounds after the thaw: a late death verdict would show here.
	e.waitStatus(name, proto.MemberAlive, 10*time.Second, 100*time.Millisecond)
	time.Sleep(3 * time.Second)
	w.assertNoDeath(t, name, "a 3 s stall")
	t.Logf("3 s SIGSTOP: stop answered in %s; non-alive observations: %v", el.Round(time.Millisecond), w.seen())
	if r.code != 0 || rep.Status != proto.DataflowFinished || rep.Error != "" {
		t.Fatalf("stop across a 3 s stall failed: %s", r)
	}
	assertNoneLost(t, rep, "a short stall")
	e.mustRun("destroy", "--grace-duration", "1s")
}

// A freeze well above the tolerance during a stop: the daemon is confirmed dead (gossip
// and the unanswering control link), the stop fails fast; after SIGCONT the daemon
// rejoins and its stale nodes are killed (fencing), leaving no orphan process. The
// issue's 30 s freeze is cut to 15 s: with the local profile the death is certain after
// about 5 s, so 15 s is three times the bound.
func TestStallAboveToleranceFencing(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("stall.yml", stubbornDataflow)
	e.up("--profile", "lan")
	name := "daemon-" + machineIDs(1)[0]
	e.mustRun("start", df, "--name", "stall", "--detach")
	pids := nodePIDs(e.waitRunning("stall", 3, 30*time.Second))

	const grace = 20 * time.Second
	stop := e.stopAsync("stall", "--grace-duration", grace.String())
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		d := e.dataflow("stall")
		for _, n := range d.Nodes {
			if n.ID == "cooperative" && n.Status == proto.NodeStopped {
				return nil
			}
		}
		return fmt.Errorf("stop not under way yet: %s", d.Status)
	})
	frozenAt := time.Now()
	e.signal(name, syscall.SIGSTOP)
	rep, r, _ := stop.wait(t, 40*time.Second)
	failedIn := time.Since(frozenAt)
	m, _ := e.member(name)
	t.Logf("SIGSTOP -> stop failed in %s; member %s %s since %s (%s)", failedIn.Round(time.Millisecond),
		name, m.Status, m.Since.Sub(frozenAt).Round(time.Millisecond), m.Reason)
	if m.Status != proto.MemberDead || !strings.Contains(m.Reason, "memberlist") {
		t.Fatalf("frozen daemon: %+v, want dead by gossip and control link", m)
	}
	if failedIn > 12*time.Second {
		t.Fatalf("stop failed %s after the freeze, want within the death's confirmation (grace was %s)", failedIn, grace)
	}
	if r.code == 0 || !strings.Contains(r.stderr, name) {
		t.Fatalf("stop: want a failure naming %s: %s", name, r)
	}
	lost := 0
	for _, n := range rep.Nodes {
		if n.Status == proto.NodeLost && strings.Contains(n.Outcome, name) {
			lost++
		}
	}
	if lost != 1 { // stubborn; the dynamic node finished and cooperative stopped before
		t.Fatalf("stop reply: %d lost nodes, want 1: %+v", lost, rep.Nodes)
	}
	if !pidAlive(pids["stubborn"]) {
		t.Fatal("the stubborn node died with the frozen daemon: the test proves nothing")
	}

	if wait := 15*time.Second - time.Since(frozenAt); wait > 0 {
		time.Sleep(wait) // the rest of the freeze
	}
	e.signal(name, syscall.SIGCONT)
	thawed := time.Now()
	e.waitStatus(name, proto.MemberAlive, 20*time.Second, 100*time.Millisecond)
	rejoined := time.Since(thawed)
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if pidAlive(pids["stubborn"]) {
			return fmt.Errorf("stale node stubborn (pid %d) still runs", pids["stubborn"])
		}
		return nil
	})
	t.Logf("SIGCONT -> alive again in %s, stale node killed %s after the thaw", rejoined.Round(time.Millisecond), time.Since(thawed).Round(time.Millisecond))
	if d := e.dataflow("stall"); d.Status != proto.DataflowFailed {
		t.Errorf("dataflow after fencing: %s (%s)", d.Status, d.Reason)
	}
	e.mustRun("destroy", "--grace-duration", "1s")
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if ps := append(processes(e.dir), processesOfEnv(e.dir)...); len(ps) > 0 {
			return fmt.Errorf("processes left: %v", ps)
		}
		return nil
	})
}

// kill -9 of the coordinator while a dataflow runs: the nodes keep running; `up` starts
// it again on the same data folder, the daemon reconnects and reports, the dataflow is
// listed running and stops cleanly.
func TestCoordinatorCrash(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("dataflow.yml", rustDataflow)
	e.up()
	name := "daemon-" + machineIDs(1)[0]
	e.mustRun("start", df, "--name", "demo", "--detach")
	pids := nodePIDs(e.waitRunning("demo", 3, 30*time.Second))
	daemonPid := e.pid(name)

	e.signal("coordinator", syscall.SIGKILL)
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if r, _ := e.exec("list"); r.code == 0 {
			return fmt.Errorf("coordinator still answers")
		}
		return nil
	})
	// With the coordinator gone for a few reconnect rounds, nothing else dies.
	time.Sleep(3 * time.Second)
	for id, pid := range pids {
		if !pidAlive(pid) {
			t.Fatalf("node %s (pid %d) died with the coordinator", id, pid)
		}
	}
	if !pidAlive(daemonPid) {
		t.Fatal("the daemon exited with the coordinator")
	}

	restarted := time.Now()
	e.up()
	if e.pid(name) != daemonPid {
		t.Fatal("up started a second daemon instead of waiting for the running one")
	}
	testutil.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		d := e.dataflow("demo")
		if d.Status != proto.DataflowRunning {
			return fmt.Errorf("dataflow %s", d.Status)
		}
		for _, n := range d.Nodes {
			if n.Status != proto.NodeRunning || n.PID != pids[n.ID] {
				return fmt.Errorf("node %s: %s pid %d", n.ID, n.Status, n.PID)
			}
		}
		if m, _ := e.member(name); m.Status != proto.MemberAlive {
			return fmt.Errorf("member %s %s", name, m.Status)
		}
		return nil
	})
	t.Logf("coordinator restart -> daemon re-registered and dataflow adopted in %s", time.Since(restarted).Round(time.Millisecond))
	rep, r, _ := e.stopJSON("demo", "--grace-duration", "2s")
	if r.code != 0 || rep.Status != proto.DataflowFinished || len(rep.Nodes) != 3 {
		t.Fatalf("stop after the coordinator's restart: %s", r)
	}
	for id, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("node %s (pid %d) still runs after the stop", id, pid)
		}
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

// Both cores busy with node processes: the daemon (and the coordinator, on the same
// cores) keep every verdict alive for 60 s on the default lan profile
// (DORACTL_CPU_SECONDS shortens it for quick local runs).
func TestCPUSaturation(t *testing.T) {
	skipShort(t)
	busyFor := 60 * time.Second
	if v, err := strconv.Atoi(os.Getenv("DORACTL_CPU_SECONDS")); err == nil && v > 0 {
		busyFor = time.Duration(v) * time.Second
	}
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("nodes:\n")
	for i := range 4 { // 4 spinning processes for 2 cores
		fmt.Fprintf(&b, "  - id: busy-%d\n    path: BIN/busy\n", i)
	}
	df := e.writeDataflow("busy.yml", b.String())
	e.up("--profile", "lan")
	name := "daemon-" + machineIDs(1)[0]
	e.mustRun("start", df, "--name", "busy", "--detach")
	pids := nodePIDs(e.waitRunning("busy", 4, 30*time.Second))

	w := e.watchVerdicts(name, "coordinator")
	start := time.Now()
	before := cpuTicks(pids)
	busyBefore, totalBefore := machineTicks(t)
	time.Sleep(busyFor) // the saturation itself; the watch polls throughout
	used := float64(cpuTicks(pids)-before) / 100 / time.Since(start).Seconds()
	busyAfter, totalAfter := machineTicks(t)
	machine := float64(busyAfter-busyBefore) / float64(totalAfter-totalBefore)
	w.assertAlive(t)
	t.Logf("busy nodes used %.2f cores for %s; the machine was %.0f%% busy", used, busyFor, 100*machine)
	// The guard that the test did what it says: every core busy (by our nodes, or by
	// whatever else shares the machine) and our nodes taking a real share of it.
	if machine < 0.9 || used < 0.5 {
		t.Fatalf("not saturated: machine %.0f%% busy, busy nodes used %.2f cores", 100*machine, used)
	}
	rep, r, _ := e.stopJSON("busy", "--grace-duration", "2s")
	if r.code != 0 || rep.Status != proto.DataflowFinished {
		t.Fatalf("stop of the busy nodes: %s", r)
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

// machineTicks reads the first line of /proc/stat: busy and total clock ticks of every core.
func machineTicks(t *testing.T) (busy, total uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatalf("read /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("parse /proc/stat %q: %v", line, err)
		}
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total
}

// cpuTicks sums utime+stime (clock ticks) of the processes.
func cpuTicks(pids map[string]int) uint64 {
	var sum uint64
	for _, pid := range pids {
		if st, err := procfs.ReadStat(pid); err == nil {
			sum += st.UTime + st.STime
		}
	}
	return sum
}

const wedgedDataflow = `nodes:
  - id: wedged
    path: BIN/stubborn
    env:
      STUBBORN_SPAWN_CHILD: 1
  - id: cooperative
    path: BIN/rust-sink
    inputs:
      tick: dora/timer/millis/50
`

// destroy with a node that ignores SIGTERM (and has a child in its group) leaves no
// process behind.
func TestDestroyWedgedNode(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	e.startWedged()
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if r := e.run("logs", "wedged", "wedged"); !strings.Contains(r.stdout, "child pid") {
			return fmt.Errorf("wedged node has not started its child yet")
		}
		return nil
	})
	start := time.Now()
	r := e.mustRun("destroy", "--grace-duration", "1s")
	e.waitNothingLeft()
	t.Logf("destroy with a wedged node: nothing left after %s\n%s", time.Since(start).Round(time.Millisecond), r.stdout)
}

// destroy with a frozen coordinator and a daemon killed by SIGKILL: the coordinator is
// stopped without its answer, and the nodes the dead daemon left running are killed.
func TestDestroyFrozenCoordinatorAndLeftNodes(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	e.startWedged()
	var wedged int
	d := e.dataflow("wedged")
	for _, n := range d.Nodes {
		if n.ID == "wedged" {
			wedged = n.PID
		}
	}
	daemons, _ := filepath.Glob(filepath.Join(e.stateDir(), "up", "daemon-*.pid"))
	if len(daemons) != 1 || wedged == 0 {
		t.Fatalf("daemon pid files %v, wedged node pid %d", daemons, wedged)
	}
	e.signal(strings.TrimSuffix(filepath.Base(daemons[0]), ".pid"), syscall.SIGKILL)
	e.signal("coordinator", syscall.SIGSTOP)
	if _, err := procStart(wedged); err != nil {
		t.Fatalf("the node died with its daemon: nothing to clean up (%v)", err)
	}

	r := e.mustRun("destroy", "--grace-duration", "1s")
	for _, want := range []string{
		"did not answer within " + destroyHealthWait.String() + "; stopping the local processes",
		fmt.Sprintf("killed node wedged of dataflow %s (pid %d): left running by daemon ", d.ID, wedged),
		"destroyed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("destroy output lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("destroy:\n%s", r.stdout)
	e.waitNothingLeft()
}

// startWedged brings a cluster up and runs wedgedDataflow on it as "wedged".
func (e *env) startWedged() {
	e.t.Helper()
	df := e.writeDataflow("wedged.yml", wedgedDataflow)
	e.up()
	e.mustRun("start", df, "--name", "wedged", "--detach")
	e.waitRunning("wedged", 2, 30*time.Second)
}

// SIGTERM to a daemon: its nodes are stopped and reported, it leaves the ring, and the
// coordinator shows it left at once, never suspect-then-dead.
func TestGracefulDaemonExit(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("dataflow.yml", strings.ReplaceAll(rustDataflow, "    path:", "    deploy:\n      machine: a\n    path:"))
	e.upMachines("a", "b")
	e.mustRun("start", df, "--name", "demo", "--detach")
	d := e.waitRunning("demo", 3, 30*time.Second)
	name := "daemon-a"
	pids := nodePIDs(d)
	w := e.watchVerdicts(name)

	termAt := time.Now()
	dpid := e.signal(name, syscall.SIGTERM)
	e.waitStatus(name, proto.MemberLeft, 5*time.Second, 50*time.Millisecond)
	leftIn := time.Since(termAt)
	testutil.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		if pidAlive(dpid) {
			return fmt.Errorf("daemon %s (pid %d) still runs", name, dpid)
		}
		for id, pid := range pids {
			if pidAlive(pid) {
				return fmt.Errorf("node %s (pid %d) still runs", id, pid)
			}
		}
		return nil
	})
	// A leave must stay a leave: gossip's later "gone" and the closed link do not turn
	// it into a death. Watch a few probe rounds (the local profile's death takes ~4 s).
	time.Sleep(5 * time.Second)
	w.end()
	t.Logf("SIGTERM -> %s left in %s; verdicts seen: %d", name, leftIn.Round(time.Millisecond), len(w.seen()))
	if len(w.seen()) < 5 {
		t.Fatalf("the members watch saw %s leave only %d times (%d polls, %d errors)", name, len(w.seen()), w.polls, w.errs)
	}
	if leftIn > 2500*time.Millisecond {
		t.Errorf("left shown %s after SIGTERM, want within a second or two", leftIn)
	}
	for _, v := range w.seen() {
		if !strings.Contains(v, " left ") {
			t.Errorf("member went through a verdict other than left: %s", v)
		}
	}
	for _, n := range e.dataflow("demo").Nodes {
		if n.Status != proto.NodeStopped && n.Status != proto.NodeFinished {
			t.Errorf("node %s ended %s (%s), want stopped by the daemon's shutdown", n.ID, n.Status, n.Outcome)
		}
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

// `doractl daemon --machine-id X` without --name is member daemon-X (not
// daemon-HOSTNAME), and --config overrides apply to a real daemon.
func TestDaemonNameFromMachineIDAndConfig(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	e.up()
	cfg := e.writeDataflow("doractl.yml", "gossip:\n  probe_interval: 800ms\n  suspicion_mult: 4\n")
	daemonPort := ""
	for i, a := range e.upArgs {
		if a == "--daemon-port" {
			daemonPort = e.upArgs[i+1]
		}
	}
	logf, err := os.Create(e.dir + "/extra.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(binDir+"/doractl", "daemon", "--coordinator", "127.0.0.1:"+daemonPort,
		"--machine-id", "extra", "--listen-addr", "127.0.0.1:0", "--node-addr", "",
		"--gossip-addr", "127.0.0.1", "--profile", "local", "--config", cfg,
		"--state-dir", e.dir+"/extra-state")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testutil.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		m, ok := e.member("daemon-extra")
		if !ok || m.Status != proto.MemberAlive || m.Machine != "extra" {
			return fmt.Errorf("member daemon-extra: %+v (listed %v)", m, ok)
		}
		return nil
	})
	if b, _ := os.ReadFile(e.dir + "/extra.log"); !strings.Contains(string(b), "local+config") {
		t.Errorf("daemon log does not show the overridden profile:\n%s", b)
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

// A freeze above the tolerance of a daemon that runs only part of a dataflow: its node
// is lost and the dataflow runs on, saying so; after SIGCONT the daemon re-registers
// with the node still running and the coordinator fences that one node: it is killed,
// its recorded outcome stays lost, and the dataflow, once stopped, ends failed.
func TestStallAboveToleranceLostNodeStaysLost(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	yaml := strings.Replace(rustDataflow, "    path: BIN/rust-node", "    deploy:\n      machine: a\n    path: BIN/rust-node", 1)
	yaml = strings.Replace(yaml, "    path: BIN/rust-status-node", "    deploy:\n      machine: a\n    path: BIN/rust-status-node", 1)
	yaml = strings.Replace(yaml, "    path: BIN/rust-sink", "    deploy:\n      machine: b\n    path: BIN/rust-sink", 1)
	df := e.writeDataflow("split.yml", yaml)
	e.upMachines("a", "b")
	e.mustRun("start", df, "--name", "split", "--detach")
	pids := nodePIDs(e.waitRunning("split", 3, 30*time.Second))
	name := "daemon-b"

	e.signal(name, syscall.SIGSTOP)
	e.waitStatus(name, proto.MemberDead, 20*time.Second, 100*time.Millisecond)
	wantReason := `1 node lost: daemon "daemon-b" confirmed dead at `
	check := func(when string) {
		t.Helper()
		testutil.CheckFor(t, 5*time.Second, 100*time.Millisecond, func() error {
			d := e.dataflow("split")
			if d.Status != proto.DataflowRunning || !strings.Contains(d.Reason, wantReason) {
				return fmt.Errorf("%s: dataflow %s (%s), want running with %q", when, d.Status, d.Reason, wantReason)
			}
			for _, n := range d.Nodes {
				want := proto.NodeRunning
				if n.ID == "rust-sink" {
					want = proto.NodeLost
				}
				if n.Status != want {
					return fmt.Errorf("%s: node %s %s (%s), want %s", when, n.ID, n.Status, n.Outcome, want)
				}
			}
			return nil
		})
	}
	check("frozen")
	if !pidAlive(pids["rust-sink"]) {
		t.Fatal("the sink died with the frozen daemon: the test proves nothing")
	}

	e.signal(name, syscall.SIGCONT)
	testutil.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if m, _ := e.member(name); m.Status != proto.MemberAlive {
			return fmt.Errorf("member %s is %s (%s)", name, m.Status, m.Reason)
		}
		if pidAlive(pids["rust-sink"]) {
			return fmt.Errorf("fenced node rust-sink (pid %d) still runs", pids["rust-sink"])
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // the fenced kill's report, which must not count
	check("after the thaw")

	r := e.run("stop", "split", "--grace-duration", "1s")
	if d := e.dataflow("split"); r.code == 0 || d.Status != proto.DataflowFailed || !strings.Contains(d.Reason, wantReason) {
		t.Fatalf("stop: %s; dataflow %s (%s), want failed naming the lost node", r, d.Status, d.Reason)
	}
	e.mustRun("destroy", "--grace-duration", "1s")
}

// A 14 s freeze on the flaky profile: gossip declares the daemon dead after about 8 s,
// but its port still accepts connections (the kernel answers for a stopped process), so
// the coordinator keeps it suspect ("frozen or starved") within the profile's 20 s stall
// grace. It is never confirmed dead, its nodes are never lost, and after the thaw it is
// alive again and a stop is clean.
func TestStallGraceFlaky(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("stall.yml", stubbornDataflow)
	e.up("--profile", "flaky")
	name := "daemon-" + machineIDs(1)[0]
	e.mustRun("start", df, "--name", "stall", "--detach")
	e.waitRunning("stall", 3, 30*time.Second)
	// Freeze only once the nodes are registered: a node whose registration outlasts its
	// 10 s timeout exits, which is not what this test is about.
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if r := e.run("logs", "stall", "cooperative", "--tail", "1"); !strings.Contains(r.stdout, "sink received message") {
			return fmt.Errorf("cooperative has received nothing yet: %s", r)
		}
		return nil
	})

	w := e.watchVerdicts(name)
	const freeze = 14 * time.Second
	frozenAt := time.Now()
	e.signal(name, syscall.SIGSTOP)
	testutil.CheckFor(t, freeze, 100*time.Millisecond, func() error {
		m, _ := e.member(name)
		if m.Status == proto.MemberDead {
			t.Fatalf("frozen daemon confirmed dead within the stall grace: %+v", m)
		}
		if m.Status != proto.MemberSuspect || !strings.Contains(m.Reason, "frozen or starved") {
			return fmt.Errorf("member %s is %s (%s)", name, m.Status, m.Reason)
		}
		return nil
	})
	m, _ := e.member(name)
	t.Logf("%s after the SIGSTOP: %s (%s)", time.Since(frozenAt).Round(time.Millisecond), m.Status, m.Reason)
	if wait := freeze - time.Since(frozenAt); wait > 0 {
		time.Sleep(wait) // the rest of the freeze
	}
	e.signal(name, syscall.SIGCONT)
	thawed := time.Now()
	e.waitStatus(name, proto.MemberAlive, 20*time.Second, 100*time.Millisecond)
	t.Logf("SIGCONT -> alive again in %s", time.Since(thawed).Round(time.Millisecond))
	w.assertNoDeath(t, name, fmt.Sprintf("a %s freeze within the stall grace", freeze))
	rep, r, _ := e.stopJSON("stall", "--grace-duration", "1s")
	if r.code != 0 || rep.Status != proto.DataflowFinished {
		t.Fatalf("stop after the thaw: %s", r)
	}
	assertNoneLost(t, rep, "a stall within the grace")
	e.mustRun("destroy", "--grace-duration", "1s")
}

// A daemon killed and started again at once, on a new gossip port, is alive as soon as
// it registers and stays alive: memberlist's later verdict on its previous process is not
// taken for the new one, and the ring learns the new address within the profile's reclaim
// window instead of at the next push/pull.
func TestDaemonRestartAfterCrash(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	e.up("--profile", "lan")
	name := "daemon-" + machineIDs(1)[0]
	killedAt := time.Now()
	e.signal(name, syscall.SIGKILL)
	e.waitStatus(name, proto.MemberDead, 5*time.Second, 50*time.Millisecond)
	e.up("--profile", "lan") // starts the daemon again, the coordinator is adopted
	w := e.watchVerdicts(name)
	gossipAddr := regexp.MustCompile(`gossip_addr=(\S+)`)
	var newAddr string
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(filepath.Join(e.stateDir(), "up", name+".log"))
		if err != nil {
			return err
		}
		all := gossipAddr.FindAllStringSubmatch(string(b), -1)
		if len(all) < 2 {
			return fmt.Errorf("%d gossip addresses in the daemon's log, want its two lives", len(all))
		}
		newAddr = all[len(all)-1][1]
		if newAddr == all[len(all)-2][1] {
			t.Skipf("the restarted daemon got its old gossip port %s again: nothing to learn", newAddr)
		}
		return nil
	})
	testutil.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if m, _ := e.member(name); m.Address != newAddr {
			return fmt.Errorf("member %s listed at %s, want its new gossip address %s", name, m.Address, newAddr)
		}
		return nil
	})
	learned := time.Since(killedAt)
	// The old process's gossip death comes 5–7 s after the kill on lan: watch past it.
	if wait := 12*time.Second - time.Since(killedAt); wait > 0 {
		time.Sleep(wait)
	}
	w.assertAlive(t)
	t.Logf("new gossip address %s learned %s after the kill", newAddr, learned.Round(time.Millisecond))
}
