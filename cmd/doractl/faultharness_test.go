package main

import (
	"encoding/json"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// upMachines starts the coordinator and one daemon process per machine id.
func (e *env) upMachines(machines ...string) {
	e.t.Helper()
	e.up("--machines", strings.Join(machines, ","))
}

// pid reads the pid `up` recorded for a process ("coordinator", "daemon-a").
func (e *env) pid(name string) int {
	e.t.Helper()
	pf, ok := readPidFile(filepath.Join(e.stateDir(), "up", name+".pid"))
	if !ok {
		e.t.Fatalf("no pid file of %s", name)
	}
	if !pf.alive() {
		e.t.Fatalf("%s (pid %d) is not running", name, pf.pid)
	}
	pid := pf.pid
	return pid
}

// signal sends sig to a process `up` started. A stopped process is continued at the
// end of the test, so the cleanup's SIGKILL is not delayed by it.
func (e *env) signal(name string, sig syscall.Signal) int {
	e.t.Helper()
	pid := e.pid(name)
	if err := syscall.Kill(pid, sig); err != nil {
		e.t.Fatalf("signal %s to %s (pid %d): %v", sig, name, pid, err)
	}
	if sig == syscall.SIGSTOP {
		e.t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
	return pid
}

// waitStatus polls the coordinator's view of member name every interval until it has
// status, failing the test after within.
func (e *env) waitStatus(name, status string, within, interval time.Duration) {
	e.t.Helper()
	testutil.CheckFor(e.t, within, interval, func() error {
		if m, _ := e.member(name); m.Status != status {
			return fmt.Errorf("member %s is %s (%s), want %s", name, m.Status, m.Reason, status)
		}
		return nil
	})
}

// member is the coordinator's view of one member.
func (e *env) member(name string) (proto.Member, bool) {
	for _, m := range e.members() {
		if m.Name == name {
			return m, true
		}
	}
	return proto.Member{}, false
}

// waitRunning waits until every node of the dataflow runs and returns it.
func (e *env) waitRunning(ref string, nodes int, within time.Duration) proto.Dataflow {
	e.t.Helper()
	var d proto.Dataflow
	testutil.CheckFor(e.t, within, 100*time.Millisecond, func() error {
		d = e.dataflow(ref)
		if d.Status != proto.DataflowRunning || len(d.Nodes) != nodes {
			return fmt.Errorf("dataflow %s with %d nodes", d.Status, len(d.Nodes))
		}
		for _, n := range d.Nodes {
			if n.Status != proto.NodeRunning && n.Status != proto.NodeWaiting {
				return fmt.Errorf("node %s is %s", n.ID, n.Status)
			}
			if n.Status == proto.NodeRunning && n.PID == 0 {
				return fmt.Errorf("node %s has no pid yet", n.ID)
			}
		}
		return nil
	})
	return d
}

// stopJSON runs `doractl stop ... -o json` and decodes the reply.
func (e *env) stopJSON(args ...string) (proto.APIStopReply, result, time.Duration) {
	e.t.Helper()
	start := time.Now()
	r, err := e.exec(append(append([]string{"stop"}, args...), "-o", "json")...)
	el := time.Since(start)
	if err != nil {
		e.t.Fatalf("doractl stop: %v", err)
	}
	var rep proto.APIStopReply
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		e.t.Fatalf("stop -o json: %v\n%s", err, r)
	}
	return rep, r, el
}

// asyncStop runs a stop in the background; wait returns its reply.
type asyncStop struct {
	start time.Time
	done  chan struct{}
	rep   proto.APIStopReply
	res   result
	el    time.Duration
	err   error
}

func (e *env) stopAsync(args ...string) *asyncStop {
	a := &asyncStop{start: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.res, a.err = e.exec(append(append([]string{"stop"}, args...), "-o", "json")...)
		a.el = time.Since(a.start)
		if a.err == nil {
			if err := json.Unmarshal([]byte(a.res.stdout), &a.rep); err != nil {
				a.err = fmt.Errorf("stop -o json: %w\n%s", err, a.res)
			}
		}
	}()
	return a
}

func (a *asyncStop) wait(t *testing.T, within time.Duration) (proto.APIStopReply, result, time.Duration) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(within):
		t.Fatalf("stop did not return within %s", within)
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.rep, a.res, a.el
}

func (a *asyncStop) finished() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// verdictWatch polls `doractl members -o json` in the background and records every
// verdict other than alive seen for the watched members.
type verdictWatch struct {
	e     *env
	names map[string]bool
	stop  chan struct{}
	done  chan struct{}

	mu    sync.Mutex
	polls int
	bad   []string
	errs  int
}

func (e *env) watchVerdicts(names ...string) *verdictWatch {
	w := &verdictWatch{e: e, names: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, n := range names {
		w.names[n] = true
	}
	go w.loop()
	e.t.Cleanup(w.end)
	return w
}

func (w *verdictWatch) loop() {
	defer close(w.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		r, err := w.e.exec("members", "-o", "json")
		var ms []proto.Member
		if err == nil && r.code == 0 {
			err = json.Unmarshal([]byte(r.stdout), &ms)
		} else if err == nil {
			err = fmt.Errorf("members: %s", r)
		}
		w.mu.Lock()
		if err != nil {
			w.errs++
		} else {
			w.polls++
			for _, m := range ms {
				if w.names[m.Name] && m.Status != proto.MemberAlive {
					w.bad = append(w.bad, fmt.Sprintf("%s %s at %s (%s)", m.Name, m.Status, time.Now().Format("15:04:05.000"), m.Reason))
				}
			}
		}
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

func (w *verdictWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// assertAlive ends the watch and fails unless every poll saw the members alive.
func (w *verdictWatch) assertAlive(t *testing.T) {
	t.Helper()
	w.end()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.polls < 3 {
		t.Fatalf("members polled only %d times (%d errors): the watch proves nothing", w.polls, w.errs)
	}
	if len(w.bad) > 0 {
		t.Fatalf("%d of %d polls saw a watched member not alive; first: %s", len(w.bad), w.polls, w.bad[0])
	}
	t.Logf("members polled %d times: always alive", w.polls)
}

// assertNoDeath ends the watch and fails if it saw name dead or left during what.
func (w *verdictWatch) assertNoDeath(t *testing.T, name, what string) {
	t.Helper()
	w.end()
	for _, v := range w.seen() {
		if strings.HasPrefix(v, name+" "+proto.MemberDead+" ") || strings.HasPrefix(v, name+" "+proto.MemberLeft+" ") {
			t.Fatalf("%s gave a death verdict: %s", what, v)
		}
	}
}

// assertNoneLost fails if a node of the stop reply was lost during what.
func assertNoneLost(t *testing.T, rep proto.APIStopReply, what string) {
	t.Helper()
	for _, n := range rep.Nodes {
		if n.Status == proto.NodeLost {
			t.Fatalf("node %s lost across %s: %+v", n.ID, what, n)
		}
	}
}

// seen lists the non-alive verdicts recorded so far.
func (w *verdictWatch) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bad...)
}

// pidAlive reports whether a process runs (not a zombie).
func pidAlive(pid int) bool {
	_, err := procStart(pid)
	return err == nil
}

// nodePIDs returns the pids of the dataflow's running nodes, by node id.
func nodePIDs(d proto.Dataflow) map[string]int {
	out := map[string]int{}
	for _, n := range d.Nodes {
		if n.PID > 0 {
			out[n.ID] = n.PID
		}
	}
	return out
}

// dumpLogs writes the last lines of every log `up` wrote, for a failed test.
func (e *env) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(e.stateDir(), "up", "*.log"))
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		e.t.Logf("--- %s (last %d lines)\n%s", filepath.Base(p), len(lines), strings.Join(lines, "\n"))
	}
}
