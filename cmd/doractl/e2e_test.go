package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

const rustDataflow = `nodes:
  - id: rust-node
    path: BIN/rust-node
    inputs:
      tick: dora/timer/millis/10
    outputs:
      - random
  - id: rust-status-node
    path: BIN/rust-status-node
    inputs:
      tick: dora/timer/millis/100
      random: rust-node/random
    outputs:
      - status
  - id: rust-sink
    path: BIN/rust-sink
    inputs:
      message: rust-status-node/status
`

// The main job as a user walks it: up, members, start, list, logs, stop, list, destroy,
// and nothing left running afterwards.
func TestEndToEndMainJob(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts real processes")
	}
	e := newEnv(t)
	df := e.writeDataflow("dataflow.yml", rustDataflow)

	e.up()
	e.up() // idempotent
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		roles := map[string]string{}
		for _, m := range e.members() {
			roles[m.Role] = m.Status
		}
		if roles["coordinator"] != proto.MemberAlive || roles["daemon"] != proto.MemberAlive {
			return fmt.Errorf("members: %v", roles)
		}
		return nil
	})

	e.mustRun("check", df)
	out := e.mustRun("start", df, "--name", "demo", "--detach")
	id := strings.TrimSpace(out.stdout)
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(id) {
		t.Fatalf("start --detach printed %q, want a UUID", id)
	}
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		d := e.dataflow("demo")
		if d.ID != id || d.Status != proto.DataflowRunning || len(d.Nodes) != 3 {
			return fmt.Errorf("dataflow %+v", d)
		}
		for _, n := range d.Nodes {
			if n.Status != proto.NodeRunning || n.Machine == "" || n.Daemon == "" {
				return fmt.Errorf("node %+v", n)
			}
		}
		return nil
	})
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		r := e.run("logs", "demo", "rust-sink")
		if n := strings.Count(r.stdout, "received"); n < 3 {
			return fmt.Errorf("sink log has %d messages: %s", n, r)
		}
		return nil
	})
	if r := e.run("logs", "demo", "rust-sink", "--tail", "2"); r.code != 0 || strings.Count(strings.TrimSpace(r.stdout), "\n") != 1 {
		t.Fatalf("logs --tail 2: %s", r)
	}

	r := e.mustRun("stop", "demo", "--grace-duration", "5s", "-o", "json")
	var rep proto.APIStopReply
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stop -o json: %v\n%s", err, r.stdout)
	}
	if len(rep.Nodes) != 3 {
		t.Fatalf("stop reply has %d nodes: %+v", len(rep.Nodes), rep)
	}
	for _, n := range rep.Nodes {
		if n.Status != proto.NodeStopped && n.Status != proto.NodeFinished {
			t.Fatalf("node %s ended %s (%s), want stopped or finished", n.ID, n.Status, n.Outcome)
		}
	}
	if d := e.dataflow(id); d.Status != proto.DataflowFinished {
		t.Fatalf("after stop, dataflow is %s", d.Status)
	}
	// Stopping again answers at once with the recorded outcome.
	start := time.Now()
	e.mustRun("stop", id)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("second stop took %s", el)
	}

	e.mustRun("destroy")
	e.waitNothingLeft()
	if r := e.run("list"); r.code == 0 || !strings.Contains(r.stderr, "cannot reach coordinator") {
		t.Fatalf("list after destroy: %s", r)
	}
}

const stubbornDataflow = `nodes:
  - id: cooperative
    path: BIN/rust-sink
    inputs:
      tick: dora/timer/millis/50
  - id: stubborn
    path: BIN/stubborn
    inputs:
      tick: dora/timer/millis/50
  - id: waiting
    path: dynamic
    inputs:
      tick: dora/timer/millis/50
`

// A node that ignores Stop and SIGTERM is killed after the grace and reported so; a
// dynamic node that never connected finishes at once.
func TestStopStubbornNode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts real processes")
	}
	e := newEnv(t)
	df := e.writeDataflow("stubborn.yml", stubbornDataflow)
	e.up()
	e.mustRun("start", df, "--name", "stubborn", "--detach")
	var pid int
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		for _, n := range e.dataflow("stubborn").Nodes {
			if n.ID == "stubborn" && n.Status == proto.NodeRunning && n.PID > 0 {
				pid = n.PID
				return nil
			}
		}
		return fmt.Errorf("stubborn node not running yet")
	})
	start := time.Now()
	firstDone := make(chan result, 1)
	go func() {
		r, err := e.exec("stop", "stubborn", "--grace-duration", "3s", "-o", "json")
		if err != nil {
			r.stderr += err.Error()
		}
		firstDone <- r
	}()
	// A second stop during the first one's grace joins it, and says so.
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if st := e.dataflow("stubborn").Status; st != proto.DataflowStopping {
			return fmt.Errorf("dataflow %s, want stopping", st)
		}
		return nil
	})
	second := e.run("stop", "stubborn", "--grace-duration", "30s")
	r := <-firstDone
	elapsed := time.Since(start)
	if second.code != 0 || !strings.Contains(second.stderr, "note: joined the stop in progress since ") ||
		!strings.Contains(second.stderr, "its grace of 3s applies") {
		t.Errorf("second stop: %s", second)
	}
	var rep proto.APIStopReply
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stop: %v\n%s", err, r)
	}
	got := map[string]proto.NodeInfo{}
	for _, n := range rep.Nodes {
		got[n.ID] = n
	}
	if n := got["stubborn"]; n.Status != proto.NodeKilled || n.Outcome != "killed after grace" {
		t.Fatalf("stubborn node: %+v", n)
	}
	if n := got["waiting"]; n.Status != proto.NodeNeverConnected || n.Outcome != "dynamic, never connected" {
		t.Fatalf("dynamic node: %+v", n)
	}
	if n := got["cooperative"]; n.Status != proto.NodeStopped {
		t.Fatalf("cooperative node: %+v", n)
	}
	// The stop itself succeeded: a kill after grace is an outcome, not a stop failure.
	if r.code != 0 {
		t.Fatalf("stop: %s", r)
	}
	// grace 3s, SIGTERM (ignored), SIGKILL 1.5s later.
	if elapsed < 3*time.Second || elapsed > 15*time.Second {
		t.Fatalf("stop took %s, want about grace + kill window", elapsed)
	}
	if _, err := procStart(pid); err == nil {
		t.Fatalf("stubborn node pid %d still running after stop", pid)
	}
	e.mustRun("destroy")
}

// A cluster brought up with a key answers the CLI only with that key, and says why not.
func TestClusterKeyGuardsAPI(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	key := "DORACTL_CLUSTER_KEY=" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	e.extraEnv = []string{key}
	e.up()
	e.mustRun("list")
	for _, tc := range []struct{ env, want string }{
		{"DORACTL_CLUSTER_KEY=", proto.ErrAPIKeyRequired},
		{"DORACTL_CLUSTER_KEY=" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210")), proto.ErrAPIKeyMismatch},
		{"DORACTL_CLUSTER_KEY=not base64!", "DORACTL_CLUSTER_KEY: cluster key is not base64"},
	} {
		e.extraEnv = []string{tc.env}
		for _, args := range [][]string{{"list"}, {"stop", "nothing"}, {"destroy"}} {
			if r := e.run(args...); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s with %s: %s\nwant exit 1 and %q", args[0], tc.env, r, tc.want)
			}
		}
	}
	// A command that needs no coordinator ignores the key, even a malformed one.
	e.extraEnv = []string{"DORACTL_CLUSTER_KEY=not base64!"}
	e.mustRun("check", e.writeDataflow("ok.yml", rustDataflow))
	e.mustRun("version")
	e.extraEnv = []string{key}
	e.mustRun("destroy")

	// up with a key on a cluster that has none says the key is not applied.
	open := newEnv(t)
	open.up()
	open.extraEnv = []string{key}
	r := open.mustRun(open.upArgs...)
	if !strings.Contains(r.stdout, "warning: coordinator already running without a cluster key; DORACTL_CLUSTER_KEY not applied") {
		t.Errorf("up with a key on a keyless cluster:\n%s", r)
	}
	open.mustRun("destroy")
}

// One problem is one line on stderr, with a non-zero exit.
func TestCLIErrors(t *testing.T) {
	e := newEnv(t)
	bad := e.writeDataflow("bad.yml", "nodes:\n  - id: a\n    path: x\n    bogus: 1\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"check", bad}, "bad.yml:4:5"},
		{[]string{"list"}, "cannot reach coordinator"},
		{[]string{"list", "-o", "yaml"}, "unknown output format"},
		{[]string{"stop", "nope"}, "cannot reach coordinator"},
		{[]string{"start", "/does/not/exist.yml"}, "no such file"},
		{[]string{"frobnicate"}, "unknown command"},
	}
	for _, c := range cases {
		r := e.run(c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("doractl %s: want non-zero exit and %q: %s", strings.Join(c.args, " "), c.want, r)
		}
		if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines > 0 {
			t.Errorf("doractl %s: error spans %d lines: %q", strings.Join(c.args, " "), lines+1, r.stderr)
		}
	}
	// Several problems: one per line, like a compiler; a suggestion on its own lines.
	two := e.writeDataflow("two.yml", "nodes:\n  - id: a\n    path: x\n    ouputs: [o]\n  - id: b\n    path: y\n    inputs:\n      i: a/o\n")
	for args, want := range map[string]string{
		"check " + two: "Error: " + two + `:4:5: node "a": unknown field "ouputs"; did you mean "outputs"?` + "\n  " + two +
			`:8:7: node "b": input "i": source "a/o": node "a" has no outputs (list them under its ` + "`outputs:`)\n",
		"strat":  "Error: unknown command \"strat\" for \"doractl\"\n  Did you mean this?\n  start\n",
		"logs x": "Error: accepts 2 arg(s), received 1\n  usage: doractl logs DATAFLOW NODE [flags] (see 'doractl logs --help')\n",
	} {
		if r := e.run(strings.Fields(args)...); r.code != 1 || r.stderr != want {
			t.Errorf("doractl %s: want exit 1 and\n%s\ngot %s", args, want, r)
		}
	}
}

// An attached start announces a node that fails while the others run, and after Ctrl-C
// shows every node's log to its last line before the outcome table.
func TestStartAttached(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	e.up()
	df := e.writeDataflow("attached.yml", rustDataflow+`  - id: failing
    path: BIN/exit-code
    env:
      EXIT_CODE: 3
      EXIT_AFTER: 300ms
`)
	p := e.startProc(false, e.cliEnv(), "start", df, "--name", "att", "--grace-duration", "2s")
	p.waitOutput(t, 30*time.Second, p.stderr, `node "failing" failed (exit 3)`)
	p.waitOutput(t, 10*time.Second, p.stdout, "rust-sink: ")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("attached start exited %d, want 1 (a node failed)\n%s", code, p)
	}
	logs := strings.Split(strings.TrimSpace(e.mustRun("logs", "att", "rust-sink").stdout), "\n")
	last := logs[len(logs)-1]
	if !strings.Contains(p.stdout.String(), "rust-sink: "+last+"\n") {
		t.Errorf("the attached output lacks the sink's last log line %q\n%s", last, p)
	}
	if strings.Count("\n"+p.stderr.String(), "\n"+`node "failing" failed (exit 3)`+"\n") != 1 {
		t.Errorf("the failure is not announced exactly once:\n%s", p.stderr)
	}
	e.mustRun("destroy")
}
