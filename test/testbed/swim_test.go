package testbed_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/deploy/testbed"
	"github.com/doractl/doractl/proto"
)

// The tests of this file check what the gossip ring (SWIM: indirect probes, suspicion)
// buys over a central heartbeat, on the bed: a coordinator and three daemons, each its
// own process on its own host.

// unreachableReason is what an operation on a daemon that is alive in the gossip ring
// but cannot be reached over its control link reports.
const unreachableReason = "alive via gossip, control link unreachable"

// memberWatch polls `doractl members` in the background and records what it sees.
type memberWatch struct {
	f        *fleet
	stopCh   chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	polls    int
	errs     int
	lastErr  error
	suspects map[string]int          // suspect observations by member
	reasons  map[string][]string     // distinct suspect reasons by member (the first few)
	dead     map[string]proto.Member // first dead (or left) observation by member
	deadAt   map[string]time.Time    // when it was observed
}

func (f *fleet) watchMembers(every time.Duration) *memberWatch {
	w := &memberWatch{f: f, stopCh: make(chan struct{}), done: make(chan struct{}),
		suspects: map[string]int{}, reasons: map[string][]string{},
		dead: map[string]proto.Member{}, deadAt: map[string]time.Time{}}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			ms, err := f.memberList()
			now := time.Now()
			w.mu.Lock()
			w.polls++
			if err != nil {
				w.errs++
				w.lastErr = err
			}
			for _, m := range ms {
				switch m.Status {
				case proto.MemberSuspect:
					w.suspects[m.Name]++
					if r := w.reasons[m.Name]; len(r) < 5 && !slices.Contains(r, m.Reason) {
						w.reasons[m.Name] = append(r, m.Reason)
					}
				case proto.MemberDead, proto.MemberLeft:
					if _, seen := w.dead[m.Name]; !seen {
						w.dead[m.Name], w.deadAt[m.Name] = m, now
					}
				}
			}
			w.mu.Unlock()
			select {
			case <-w.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// close stops the polling and waits for the poll in progress.
func (w *memberWatch) close() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

// deaths returns the dead or left observations so far, except of the given members.
func (w *memberWatch) deaths(except ...string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name, m := range w.dead {
		if slices.Contains(except, name) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s at %s (observed %s): %s", name, m.Status,
			m.Since.Format("15:04:05.000"), w.deadAt[name].Format("15:04:05.000"), m.Reason))
	}
	sort.Strings(out)
	return out
}

// summary is the figures of the watch, for t.Logf.
func (w *memberWatch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d polls (%d failed", w.polls, w.errs)
	if w.lastErr != nil {
		fmt.Fprintf(&b, ", last: %v", w.lastErr)
	}
	b.WriteString("); suspect observations:")
	names := make([]string, 0, len(w.f.daemons))
	for m := range w.f.daemons {
		names = append(names, "daemon-"+m)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, w.suspects[n])
	}
	for _, n := range names {
		for _, r := range w.reasons[n] {
			fmt.Fprintf(&b, "\n  %s suspect: %s", n, r)
		}
	}
	return b.String()
}

// dataflow returns a dataflow as `doractl list -o json` prints it.
func (f *fleet) dataflow(name string) (proto.Dataflow, error) {
	r, err := f.cli(10*time.Second, "list", "-o", "json")
	if err != nil || r.code != 0 {
		return proto.Dataflow{}, fmt.Errorf("list: %v exit %d %s", err, r.code, r.stderr)
	}
	var dfs []proto.Dataflow
	if err := json.Unmarshal([]byte(r.stdout), &dfs); err != nil {
		return proto.Dataflow{}, fmt.Errorf("list: %w", err)
	}
	for _, d := range dfs {
		if d.Name == name {
			return d, nil
		}
	}
	return proto.Dataflow{}, fmt.Errorf("no dataflow %q in the list", name)
}

func nodeOf(d proto.Dataflow, id string) (proto.NodeInfo, bool) {
	for _, n := range d.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return proto.NodeInfo{}, false
}

// nodeProcs lists the live processes of one node of a dataflow (by the environment its
// daemon gives it) inside h's network namespace.
func nodeProcs(h *testbed.Host, dfID, nodeID string) []int {
	var ns syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", h.Namespace), &ns); err != nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, "ns", "net"), &st) != nil || st.Ino != ns.Ino || st.Dev != ns.Dev {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil || bytes.Contains(stat, []byte(") Z")) {
			continue
		}
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil {
			continue
		}
		env = append([]byte{0}, env...)
		if bytes.Contains(env, []byte("\x00"+proto.EnvDataflowID+"="+dfID+"\x00")) &&
			bytes.Contains(env, []byte("\x00"+proto.EnvNodeID+"="+nodeID+"\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

type stopResult struct {
	rep     proto.APIStopReply
	r       result
	err     error
	elapsed time.Duration
}

// stopAsync runs `doractl stop NAME -o json ARGS...` in the background.
func (f *fleet) stopAsync(name string, cliTimeout time.Duration, args ...string) <-chan stopResult {
	ch := make(chan stopResult, 1)
	go func() {
		start := time.Now()
		r, err := f.cli(cliTimeout, append([]string{"stop", name, "-o", "json"}, args...)...)
		s := stopResult{r: r, err: err, elapsed: time.Since(start)}
		if err == nil {
			if jerr := json.Unmarshal([]byte(r.stdout), &s.rep); jerr != nil {
				s.err = fmt.Errorf("bad JSON (%v): exit %d\n%s%s", jerr, r.code, r.stdout, r.stderr)
			}
		}
		ch <- s
	}()
	return ch
}

// TestOneWayPartitionCoordinatorToDaemon drops everything the coordinator sends to
// daemon-m2 for about 30 s. Indirect probes through the other daemons keep m2 alive in
// the ring: it may be suspect, never dead. A stop issued meanwhile cannot reach it: it
// returns by its deadline naming m2, "alive via gossip, control link unreachable", and
// its intent is applied when m2 reconnects after the heal (fencing), leaving no process
// of m2's node behind.
func TestOneWayPartitionCoordinatorToDaemon(t *testing.T) {
	const (
		hold        = 30 * time.Second // how long the one-way partition lasts
		grace       = time.Second
		stopTimeout = 5 * time.Second // >= grace + kill window (grace/2)
		// The coordinator answers by the deadline plus its force-kill wait (1 s); the
		// rest is room for a loaded machine (CLI start-up in the namespace, scheduling).
		answerBy = stopTimeout + time.Second + 3*time.Second
	)
	f := newFleet(t, 3)
	const received = "sink received message"
	pinnedID := f.startDF("pinned", pinned)
	f.waitLog("pinned", "stub-sink", received, 5, 30*time.Second)
	if n := len(nodeProcs(f.hostOf["m2"], pinnedID, "stub")); n != 1 {
		t.Fatalf("%d processes of pinned/stub on m2's host before the partition, want 1", n)
	}

	h1, h2 := f.hosts[0], f.hostOf["m2"]
	w := f.watchMembers(250 * time.Millisecond)
	defer w.close()
	if err := f.bed.OneWay(h1, h2); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	healed := false
	defer func() {
		if !healed {
			_ = f.bed.Heal()
		}
	}()

	// Let the coordinator notice that m2 does not answer (its link goes quiet), then stop
	// the dataflow with a node there.
	time.Sleep(2 * time.Second) // holds the fault; nothing is asserted on it
	stopAt := time.Now()
	var s stopResult
	select {
	case s = <-f.stopAsync("pinned", stopTimeout+30*time.Second,
		"--grace-duration", grace.String(), "--timeout", stopTimeout.String()):
	case <-time.After(answerBy + 30*time.Second):
		t.Fatal("stop of pinned during the one-way partition did not return")
	}
	if s.err != nil {
		t.Fatalf("stop pinned: %v\n%s%s", s.err, s.r.stdout, s.r.stderr)
	}
	t.Logf("stop pinned %s into the partition: exit %d in %s (server: %s): %s; unconfirmed %v",
		stopAt.Sub(cut).Round(100*time.Millisecond), s.r.code, s.elapsed.Round(time.Millisecond),
		s.rep.Elapsed, s.rep.Error, s.rep.Unconfirmed)
	if s.elapsed > answerBy {
		t.Errorf("stop with --timeout %s returned after %s, want by %s", stopTimeout, s.elapsed, answerBy)
	}
	if s.r.code == 0 {
		t.Errorf("stop pinned exited 0 with daemon-m2 unreachable")
	}
	if !slices.Contains(s.rep.Unconfirmed, "daemon-m2") {
		t.Errorf("stop pinned: unconfirmed %v, want daemon-m2", s.rep.Unconfirmed)
	}
	if !strings.Contains(s.rep.Error, `daemon "daemon-m2"`) || !strings.Contains(s.rep.Error, unreachableReason) {
		t.Errorf("stop pinned: error %q, want it to name daemon-m2 and say %q", s.rep.Error, unreachableReason)
	}
	for _, n := range s.rep.Nodes {
		switch n.ID {
		case "stub":
			if proto.IsFinal(n.Status) {
				t.Errorf("stub on the unreachable m2: %s %q, want no outcome yet", n.Status, n.Outcome)
			}
		case "stub-sink":
			if !proto.IsFinal(n.Status) || n.Status == proto.NodeLost {
				t.Errorf("stub-sink on m1: %s %q, want stopped", n.Status, n.Outcome)
			}
		}
	}

	// Hold the partition; m2 is never declared dead (the watch checks every 250 ms).
	time.Sleep(time.Until(cut.Add(hold))) // holds the fault
	if d := w.deaths(); len(d) > 0 {
		t.Errorf("members declared dead during the one-way partition: %s", strings.Join(d, "; "))
	}
	if n := len(nodeProcs(h2, pinnedID, "stub")); n != 1 {
		t.Errorf("%d processes of pinned/stub on m2's host during the partition, want it still running", n)
	}
	t.Logf("during %s of one-way partition coord -> m2: %s", hold, w.summary())

	// Heal: m2 reconnects, and the stop recorded while it was unreachable is applied.
	healAt := f.healUntilAlive("daemon-m2")
	healed = true
	var final proto.Dataflow
	testutil.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		d, err := f.dataflow("pinned")
		if err != nil {
			return err
		}
		n, _ := nodeOf(d, "stub")
		if d.Status != proto.DataflowFinished && d.Status != proto.DataflowFailed {
			return fmt.Errorf("pinned is %s (stub %s %q)", d.Status, n.Status, n.Outcome)
		}
		final = d
		return nil
	})
	stub, _ := nodeOf(final, "stub")
	if stub.Status != proto.NodeStopped && stub.Status != proto.NodeKilled {
		t.Errorf("stub after the heal: %s %q, want stopped or killed by the recorded stop", stub.Status, stub.Outcome)
	}
	t.Logf("pinned %s %s after the heal: stub %s %q", final.Status,
		time.Since(healAt).Round(100*time.Millisecond), stub.Status, stub.Outcome)
	testutil.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		if pids := nodeProcs(h2, pinnedID, "stub"); len(pids) > 0 {
			return fmt.Errorf("processes %v of pinned/stub still in %s", pids, h2.Namespace)
		}
		return nil
	})
	w.close()
	if d := w.deaths(); len(d) > 0 {
		t.Errorf("members declared dead during the test: %s", strings.Join(d, "; "))
	}
}

// lossDuration is how long TestLossFlaky holds 20 % loss on every link (CI runs the
// full 5 minutes). DORACTL_LOSS_DURATION overrides it for quick local runs.
const lossDuration = 5 * time.Minute

func lossDurationFor(t *testing.T) time.Duration {
	v := os.Getenv("DORACTL_LOSS_DURATION")
	if v == "" {
		return lossDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 20*time.Second {
		t.Fatalf("DORACTL_LOSS_DURATION=%q: want a duration of at least 20s", v)
	}
	return d
}

// flakyDeathBound is how long the flaky profile may take to confirm the death of a
// member of a ring of n, from its crash, when only gossip sees it: every member probes
// the others in turn, so the victim is probed within (n-1) probe intervals; that probe
// (direct, then indirect) fails within one more interval; with so few members no
// suspicion confirmations are possible, so the suspect is declared dead exactly
// MinSuspicionTimeout later; then the coordinator's detector tries the control link for
// up to its confirm timeout (ConfirmTimeout). 2 s more cover the spread of the verdict and a
// loaded machine. The crash of a process is usually proved far sooner: its control
// link resets and its port refuses connections.
func flakyDeathBound(t *testing.T, n int) time.Duration {
	p, err := cluster.ProfileByName(cluster.ProfileFlaky)
	if err != nil {
		t.Fatal(err)
	}
	const slack = 2 * time.Second
	return time.Duration(n-1)*p.ProbeInterval + p.ProbeInterval + p.MinSuspicionTimeout(n) + p.ConfirmTimeout + slack
}

// hold is a dataflow whose node on m3 ignores Stop (and SIGTERM): its stop waits for
// the grace period, or for m3's death. Its node on m1 stops at once.
const hold = `nodes:
  - id: stubborn
    path: BIN/ignore-stop
    deploy:
      machine: m3
  - id: beat
    path: BIN/rust-node
    deploy:
      machine: m1
    inputs:
      tick: dora/timer/millis/100
    outputs:
      - random
`

// TestLossFlaky runs the fleet on the flaky profile with 20 % of the packets of every
// link lost (TCP included) for lossDuration, a dataflow crossing all three daemons
// running throughout: no member is ever declared dead. At 3/4 of the time daemon-m3's
// host is killed (kill -9 of the daemon and its nodes) while a stop waits on it: its
// death is confirmed within the profile's bound and the stop is answered at once.
func TestLossFlaky(t *testing.T) {
	dur := lossDurationFor(t)
	f := newFleetProfile(t, 3, cluster.ProfileFlaky)
	bound := flakyDeathBound(t, 4)
	const received = "sink received message"
	spanID := f.startDF("span", span)
	f.startDF("hold", hold)
	f.waitLog("span", "sink", received, 10, 30*time.Second)
	testutil.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		d, err := f.dataflow("hold")
		if err != nil {
			return err
		}
		if n, _ := nodeOf(d, "stubborn"); n.Status != proto.NodeRunning {
			return fmt.Errorf("hold/stubborn is %s", n.Status)
		}
		return nil
	})

	w := f.watchMembers(500 * time.Millisecond)
	defer w.close()
	if err := f.bed.LossAll(20); err != nil {
		t.Fatal(err)
	}
	lossStart := time.Now()
	defer func() { _ = f.bed.Heal() }()
	sinkBefore := strings.Count(f.logs("span", "sink"), received)

	// Until 3/4 of the time: nobody dies. Fail early on a false death.
	killTime := lossStart.Add(dur * 3 / 4)
	for time.Now().Before(killTime) {
		time.Sleep(min(time.Second, time.Until(killTime))) // holds the fault
		if d := w.deaths(); len(d) > 0 {
			t.Fatalf("false death %s into 20%% loss: %s\n%s", time.Since(lossStart).Round(time.Second),
				strings.Join(d, "; "), w.summary())
		}
	}
	t.Logf("%s of 20%% loss before the kill: %s", time.Since(lossStart).Round(time.Second), w.summary())

	// The dataflow crossed the hosts all along.
	d, err := f.dataflow("span")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range d.Nodes {
		if n.Status != proto.NodeRunning {
			t.Errorf("span/%s on %s is %s %q under loss, want running", n.ID, n.Machine, n.Status, n.Outcome)
		}
	}
	sinkNow := strings.Count(f.logs("span", "sink"), received)
	t.Logf("span/sink on m3 received %d messages from m1 through m2 under loss", sinkNow-sinkBefore)
	if sinkNow <= sinkBefore {
		t.Errorf("span/sink received nothing under loss (%d lines, %d before)", sinkNow, sinkBefore)
	}

	// A stop that waits on m3: its stubborn node ignores Stop for the whole grace.
	stopCh := f.stopAsync("hold", 5*time.Minute, "--grace-duration", "2m", "--timeout", "4m")
	testutil.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		d, err := f.dataflow("hold")
		if err != nil {
			return err
		}
		if beat, _ := nodeOf(d, "beat"); d.Status != proto.DataflowStopping || !proto.IsFinal(beat.Status) {
			return fmt.Errorf("hold is %s, beat %s: the stop has not reached m1 yet", d.Status, beat.Status)
		}
		return nil
	})
	select {
	case s := <-stopCh:
		t.Fatalf("stop of hold returned before m3 was killed: exit %d %s %s", s.r.code, s.rep.Error, s.err)
	default:
	}

	h3 := f.hostOf["m3"]
	killAt := time.Now()
	if err := f.bed.Kill(h3); err != nil {
		t.Fatal(err)
	}
	var dead proto.Member
	testutil.CheckFor(t, bound+5*time.Second, 100*time.Millisecond, func() error {
		ms, err := f.memberList()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name == "daemon-m3" {
				if m.Status != proto.MemberDead {
					return fmt.Errorf("daemon-m3 is %s (%s)", m.Status, m.Reason)
				}
				dead = m
				return nil
			}
		}
		return fmt.Errorf("daemon-m3 not listed")
	})
	observed := time.Since(killAt)
	toDead := dead.Since.Sub(killAt)
	t.Logf("daemon-m3 confirmed dead %s after kill -9 (observed after %s; bound %s): %s",
		toDead.Round(time.Millisecond), observed.Round(time.Millisecond), bound, dead.Reason)
	if toDead > bound {
		t.Errorf("daemon-m3 confirmed dead %s after the kill, want within the flaky bound %s", toDead, bound)
	}

	// The pending stop is answered at the death, long before its grace.
	var s stopResult
	select {
	case s = <-stopCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("stop of hold not answered 10 s after daemon-m3 was confirmed dead")
	}
	if s.err != nil {
		t.Fatalf("stop hold: %v", s.err)
	}
	t.Logf("stop hold answered %s after the kill: exit %d: %s", time.Since(killAt).Round(time.Millisecond), s.r.code, s.rep.Error)
	if s.r.code == 0 {
		t.Errorf("stop of hold exited 0 with daemon-m3 dead")
	}
	checkLostAndEnded(t, s.rep, "stubborn", "daemon-m3", "beat")

	// The rest of the time under loss: the survivors stay in.
	time.Sleep(time.Until(lossStart.Add(dur))) // holds the fault
	w.close()
	if d := w.deaths("daemon-m3"); len(d) > 0 {
		t.Errorf("false deaths under 20%% loss: %s", strings.Join(d, "; "))
	}
	t.Logf("%s of 20%% loss in all: %s", dur, w.summary())
	if err := f.bed.Heal(); err != nil {
		t.Fatal(err)
	}
	rep, r := f.stop("span", "--grace-duration", "2s", "--timeout", "20s")
	t.Logf("stop span: exit %d: %s", r.code, rep.Error)
	testutil.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		if n := procsOf(spanID); n != 0 {
			return fmt.Errorf("%d processes of span still running", n)
		}
		return nil
	})
}
