// Package testbed_test runs doractl end to end on the network-namespace test bed: one
// coordinator and several daemons, each its own process on its own "host".
package testbed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/deploy/testbed"
	"github.com/doractl/doractl/proto"
)

// binDir holds doractl and the example nodes, built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doractl-testbed-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		builds := map[string]string{
			"doractl":          "github.com/doractl/doractl/cmd/doractl",
			"rust-node":        "github.com/doractl/doractl/examples/rust-dataflow/node",
			"rust-status-node": "github.com/doractl/doractl/examples/rust-dataflow/status-node",
			"rust-sink":        "github.com/doractl/doractl/examples/rust-dataflow/sink",
			"ignore-stop":      "github.com/doractl/doractl/examples/stubborn/ignore-stop",
		}
		for name, pkg := range builds {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

const (
	controlPort = 6012
	daemonPort  = 53290
	gossipPort  = 53292
)

// fleet is a coordinator on h1 and one daemon per other host, daemon-mI on machine mI.
type fleet struct {
	t       *testing.T
	bed     *testbed.Bed
	hosts   []*testbed.Host
	dir     string
	coord   *testbed.Process
	daemons map[string]*testbed.Process // by machine id
	hostOf  map[string]*testbed.Host    // by machine id
}

func newFleet(t *testing.T, daemons int) *fleet {
	t.Helper()
	return newFleetProfile(t, daemons, "local")
}

// newFleetProfile is newFleet with every process on the given gossip profile.
func newFleetProfile(t *testing.T, daemons int, profile string) *fleet {
	t.Helper()
	if err := testbed.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	bed, err := testbed.New(ctx, testbed.Config{Hosts: daemons + 1, LogDir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, bed: bed, hosts: bed.Hosts(), dir: dir, daemons: map[string]*testbed.Process{}, hostOf: map[string]*testbed.Host{}}
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
		_ = bed.Close()
	})
	h1 := f.hosts[0]
	f.coord = f.start(h1, "coordinator",
		"--control-addr", fmt.Sprintf("0.0.0.0:%d", controlPort),
		"--daemon-addr", fmt.Sprintf("0.0.0.0:%d", daemonPort),
		"--gossip-addr", h1.Addr, "--gossip-port", strconv.Itoa(gossipPort),
		"--profile", profile, "--machine-id", "coord",
		"--data-dir", filepath.Join(dir, "coordinator"))
	for i, h := range f.hosts[1:] {
		m := "m" + strconv.Itoa(i+1)
		f.hostOf[m] = h
		f.daemons[m] = f.start(h, "daemon",
			"--coordinator", fmt.Sprintf("%s:%d", h1.Addr, daemonPort),
			"--machine-id", m, "--name", "daemon-"+m,
			"--listen-addr", h.Addr+":0", "--gossip-addr", h.Addr,
			"--profile", profile, "--state-dir", filepath.Join(dir, "state-"+m))
	}
	f.waitMembers(30*time.Second, func(st map[string]string) error {
		for m := range f.daemons {
			if st["daemon-"+m] != proto.MemberAlive {
				return fmt.Errorf("daemon-%s is %q", m, st["daemon-"+m])
			}
		}
		return nil
	})
	return f
}

func (f *fleet) start(h *testbed.Host, args ...string) *testbed.Process {
	f.t.Helper()
	p, err := h.Start(context.Background(), filepath.Join(binDir, "doractl"), args...)
	if err != nil {
		f.t.Fatalf("start doractl %s on %s: %v", args[0], h, err)
	}
	return p
}

func (f *fleet) dumpLogs() {
	for name, p := range map[string]*testbed.Process{"coordinator": f.coord} {
		if s, err := p.Log(); err == nil {
			f.t.Logf("--- %s log (tail) ---\n%s", name, tail(s, 40))
		}
	}
	for m, p := range f.daemons {
		if s, err := p.Log(); err == nil {
			f.t.Logf("--- daemon %s log (tail) ---\n%s", m, tail(s, 40))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the doractl CLI on the coordinator's host.
func (f *fleet) cli(timeout time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append(args, "--coordinator-addr", fmt.Sprintf("127.0.0.1:%d", controlPort))
	cmd := f.hosts[0].Command(ctx, filepath.Join(binDir, "doractl"), args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code, err = ee.ExitCode(), nil
	}
	return r, err
}

func (f *fleet) mustCLI(args ...string) string {
	f.t.Helper()
	r, err := f.cli(30*time.Second, args...)
	if err != nil || r.code != 0 {
		f.t.Fatalf("doractl %s: %v exit %d\n%s%s", strings.Join(args, " "), err, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// memberList returns the members as `doractl members -o json` prints them.
func (f *fleet) memberList() ([]proto.Member, error) {
	r, err := f.cli(10*time.Second, "members", "-o", "json")
	if err != nil || r.code != 0 {
		return nil, fmt.Errorf("members: %v exit %d %s", err, r.code, r.stderr)
	}
	var ms []proto.Member
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	return ms, nil
}

// members returns member name -> status.
func (f *fleet) members() (map[string]string, error) {
	ms, err := f.memberList()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out, nil
}

func (f *fleet) waitMembers(timeout time.Duration, cond func(map[string]string) error) {
	f.t.Helper()
	testutil.CheckFor(f.t, timeout, 200*time.Millisecond, func() error {
		st, err := f.members()
		if err != nil {
			return err
		}
		return cond(st)
	})
}

// logs returns a node's log so far.
func (f *fleet) logs(df, node string) string {
	r, err := f.cli(10*time.Second, "logs", df, node)
	if err != nil {
		return ""
	}
	return r.stdout
}

func (f *fleet) startDF(name, yaml string) string {
	f.t.Helper()
	path := filepath.Join(f.dir, name+".yml")
	yaml = strings.ReplaceAll(yaml, "BIN/", binDir+"/")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimSpace(f.mustCLI("start", path, "--name", name, "--detach"))
}

func (f *fleet) stop(name string, args ...string) (proto.APIStopReply, result) {
	f.t.Helper()
	r, err := f.cli(60*time.Second, append([]string{"stop", name, "-o", "json"}, args...)...)
	if err != nil {
		f.t.Fatalf("stop %s: %v", name, err)
	}
	var rep proto.APIStopReply
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		f.t.Fatalf("stop %s: bad JSON (%v): exit %d\n%s%s", name, err, r.code, r.stdout, r.stderr)
	}
	return rep, r
}

// waitLog waits until a node's log has at least n lines containing sub.
func (f *fleet) waitLog(df, node, sub string, n int, timeout time.Duration) {
	f.t.Helper()
	testutil.CheckFor(f.t, timeout, 200*time.Millisecond, func() error {
		if got := strings.Count(f.logs(df, node), sub); got < n {
			return fmt.Errorf("%s/%s: %d lines with %q, want %d", df, node, got, sub, n)
		}
		return nil
	})
}

// procsOf counts the live processes of a dataflow (by the environment a daemon gives its
// nodes), on every host of the bed.
func procsOf(dfID string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || bytes.Contains(stat, []byte(") Z")) {
			continue
		}
		if bytes.Contains(env, []byte(proto.EnvDataflowID+"="+dfID+"\x00")) {
			n++
		}
	}
	return n
}

// span: a chain over three machines, with one consumer beside its remote producer's
// consumer (mixed local and remote consumers of mid/status).
const span = `nodes:
  - id: src
    path: BIN/rust-node
    _unstable_deploy:
      machine: m1
    inputs:
      tick: dora/timer/millis/20
    outputs:
      - random
  - id: mid
    path: BIN/rust-status-node
    deploy:
      machine: m2
    inputs:
      tick: dora/timer/millis/100
      random: src/random
    outputs:
      - status
  - id: sink
    path: BIN/rust-sink
    deploy:
      machine: m3
    inputs:
      message: mid/status
  - id: near-sink
    path: BIN/rust-sink
    deploy:
      machine: m2
    inputs:
      message: mid/status
`

// pinned has a node on m2 whose consumer is on m1.
const pinned = `nodes:
  - id: stub
    path: BIN/rust-node
    deploy:
      machine: m2
    inputs:
      tick: dora/timer/millis/50
    outputs:
      - random
  - id: stub-sink
    path: BIN/rust-sink
    deploy:
      machine: m1
    inputs:
      message: stub/random
`

// partitionFor is how long TestDataflowAcrossHosts cuts one daemon's host off.
const partitionFor = 60 * time.Second

func TestDataflowAcrossHosts(t *testing.T) {
	f := newFleet(t, 3)

	// Messages cross two daemon<->daemon links (m1 -> m2 -> m3) and reach both the
	// remote and the local consumer of mid/status.
	f.startDF("span", span)
	const received = "sink received message"
	f.waitLog("span", "sink", received, 10, 30*time.Second)
	f.waitLog("span", "near-sink", received, 10, 10*time.Second)

	rep, r := f.stop("span", "--grace-duration", "3s")
	if r.code != 0 {
		t.Errorf("stop span: exit %d: %s %s", r.code, rep.Error, r.stderr)
	}
	if len(rep.Nodes) != 4 {
		t.Fatalf("stop span: %d node outcomes, want 4: %+v", len(rep.Nodes), rep.Nodes)
	}
	for _, n := range rep.Nodes {
		if !proto.IsFinal(n.Status) || n.Outcome == "" {
			t.Errorf("node %s on %s: status %q outcome %q, want an outcome", n.ID, n.Machine, n.Status, n.Outcome)
		}
	}
	t.Logf("stop span in %s: %+v", rep.Elapsed, rep.Nodes)

	// Partition m2's host from everyone long enough for it to be confirmed dead.
	crossID := f.startDF("cross", span)
	pinnedID := f.startDF("pinned", pinned)
	f.waitLog("cross", "sink", received, 5, 30*time.Second)
	f.waitLog("pinned", "stub-sink", received, 5, 30*time.Second)
	h2 := f.hostOf["m2"]
	var others []*testbed.Host
	for _, h := range f.hosts {
		if h != h2 {
			others = append(others, h)
		}
	}
	if err := f.bed.Partition([]*testbed.Host{h2}, others); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	healed := false
	defer func() {
		if !healed {
			_ = f.bed.Heal()
		}
	}()

	// A stop issued while m2 is unreachable waits for it, then fails at its death.
	type stopped struct {
		rep proto.APIStopReply
		r   result
		err error
	}
	stopDone := make(chan stopped, 1)
	go func() {
		r, err := f.cli(60*time.Second, "stop", "pinned", "-o", "json", "--grace-duration", "2s", "--timeout", "40s")
		var rep proto.APIStopReply
		if err == nil {
			err = json.Unmarshal([]byte(r.stdout), &rep)
		}
		stopDone <- stopped{rep, r, err}
	}()

	f.waitMembers(40*time.Second, func(st map[string]string) error {
		if st["daemon-m2"] != proto.MemberDead {
			return fmt.Errorf("daemon-m2 is %q", st["daemon-m2"])
		}
		return nil
	})
	t.Logf("daemon-m2 confirmed dead %s after the partition", time.Since(cut).Round(100*time.Millisecond))

	var s stopped
	select {
	case s = <-stopDone:
	case <-time.After(20 * time.Second):
		t.Fatal("stop of pinned did not return after daemon-m2's death")
	}
	if s.err != nil {
		t.Fatalf("stop pinned: %v\n%s%s", s.err, s.r.stdout, s.r.stderr)
	}
	if s.r.code == 0 {
		t.Errorf("stop pinned with daemon-m2 dead exited 0")
	}
	checkLostAndEnded(t, s.rep, "stub", "daemon-m2", "stub-sink")
	t.Logf("stop pinned during the partition: exit %d in %s: %s", s.r.code, s.rep.Elapsed, s.rep.Error)

	// The consumer of m2's node on m3 learns that its producer is gone.
	testutil.CheckFor(t, 15*time.Second, 200*time.Millisecond, func() error {
		if l := f.logs("cross", "sink"); !strings.Contains(l, `input "message" was closed`) {
			return errors.New("cross/sink: input not closed yet")
		}
		return nil
	})
	if n := procsOf(pinnedID); n != 1 {
		t.Errorf("%d processes of pinned while m2 is cut off, want its stub still running there", n)
	}

	// Hold the partition for the 60 s: m2 stays dead all along (no flapping back
	// through stale gossip), then heal.
	for time.Since(cut) < partitionFor {
		if st, err := f.members(); err == nil && st["daemon-m2"] != proto.MemberDead {
			t.Fatalf("daemon-m2 is %q %s into the partition, want dead", st["daemon-m2"], time.Since(cut).Round(time.Second))
		}
		time.Sleep(time.Second)
	}

	// Heal: m2 rejoins, and the node of the dataflow stopped meanwhile is killed.
	f.healUntilAlive("daemon-m2")
	healed = true
	testutil.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		if n := procsOf(pinnedID); n != 0 {
			return fmt.Errorf("%d processes of the stopped dataflow pinned still running", n)
		}
		return nil
	})

	rep, r = f.stop("cross", "--grace-duration", "2s", "--timeout", "30s")
	for _, n := range rep.Nodes {
		if !proto.IsFinal(n.Status) {
			t.Errorf("cross/%s: %s after stop", n.ID, n.Status)
		}
	}
	t.Logf("stop cross: exit %d: %+v", r.code, rep.Nodes)
	testutil.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		if n := procsOf(crossID); n != 0 {
			return fmt.Errorf("%d processes of cross still running", n)
		}
		return nil
	})
}

// checkLostAndEnded asserts a stop reply given while one daemon died: lost is `lost`
// naming that daemon, ended has a final outcome other than lost (it ran elsewhere).
func checkLostAndEnded(t *testing.T, rep proto.APIStopReply, lost, daemon, ended string) {
	t.Helper()
	for _, n := range rep.Nodes {
		switch n.ID {
		case lost:
			if n.Status != proto.NodeLost || !strings.Contains(n.Outcome, daemon) {
				t.Errorf("%s: %s %q, want lost naming %s", n.ID, n.Status, n.Outcome, daemon)
			}
		case ended:
			if !proto.IsFinal(n.Status) || n.Status == proto.NodeLost {
				t.Errorf("%s: %s %q, want stopped on a live daemon", n.ID, n.Status, n.Outcome)
			}
		}
	}
}

// healUntilAlive heals every fault of the bed, waits until daemon is alive again and
// returns when the heal was done.
func (f *fleet) healUntilAlive(daemon string) time.Time {
	f.t.Helper()
	if err := f.bed.Heal(); err != nil {
		f.t.Fatal(err)
	}
	healAt := time.Now()
	f.waitMembers(40*time.Second, func(st map[string]string) error {
		if st[daemon] != proto.MemberAlive {
			return fmt.Errorf("%s is %q", daemon, st[daemon])
		}
		return nil
	})
	f.t.Logf("%s alive again %s after the heal", daemon, time.Since(healAt).Round(100*time.Millisecond))
	return healAt
}
