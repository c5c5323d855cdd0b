package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/doractl/doractl/proto"
)

// machines are the daemons of a trial. Every trial adds a fresh victim daemon (machine
// id with a trial number) next to two bystanders, a and b, so no trial waits for
// memberlist to let a restarted daemon reclaim a dead name: the ring holds the
// coordinator, a, b and the victim (4 live members).
func machines(victim string) []string { return []string{"a", "b", victim} }

// pollInterval is how often `doractl members -o json` is polled.
const pollInterval = 50 * time.Millisecond

// crashGrace is the grace of the pending stop: far longer than any detection.
const crashGrace = 30 * time.Second

// crashTrial is one kill -9 during a pending stop.
type crashTrial struct {
	answered time.Duration // kill -9 -> the stop CLI returned
	code     int           // the stop's exit status
	lost     bool          // the stubborn node's outcome is lost
	refused  bool          // the death was proved by the refused control port
	outcome  string
}

// crash starts a dataflow with one stubborn node on a fresh victim daemon, stops it with
// a long grace, kills the victim with SIGKILL while the stop is pending and times the
// stop's answer.
func crash(ctx context.Context, e *env, stubborn string, n int) (crashTrial, error) {
	var t crashTrial
	victim := fmt.Sprintf("crash%02d", n)
	if err := e.up(ctx, machines(victim)...); err != nil {
		return t, err
	}
	name := "crash-" + victim
	desc := fmt.Sprintf("nodes:\n  - id: stubborn\n    path: %s\n    deploy:\n      machine: %s\n", stubborn, victim)
	path := filepath.Join(e.dir, name+".yml")
	if err := os.WriteFile(path, []byte(desc), 0o644); err != nil {
		return t, fmt.Errorf("write dataflow: %w", err)
	}
	if _, err := e.mustRun(ctx, 30*time.Second, "start", path, "--name", name, "--detach"); err != nil {
		return t, err
	}
	nodePID := 0
	err := pollUntil(ctx, 20*time.Second, 20*time.Millisecond, "stubborn node running", func() (bool, error) {
		d, err := e.dataflow(ctx, name)
		if err != nil {
			return false, err
		}
		for _, nd := range d.Nodes {
			if nd.Status == proto.NodeRunning {
				nodePID = nd.PID
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return t, err
	}
	defer func() {
		// A daemon killed with SIGKILL leaves its node behind (no parent-death signal by
		// default): kill it and its process group.
		if nodePID > 0 {
			_ = syscall.Kill(-nodePID, syscall.SIGKILL)
			_ = syscall.Kill(nodePID, syscall.SIGKILL)
		}
	}()

	type stopped struct {
		r   result
		err error
		at  time.Time
	}
	done := make(chan stopped, 1)
	go func() {
		r, err := e.exec(ctx, 2*time.Minute, "stop", name, "--grace-duration", crashGrace.String(), "-o", "json")
		done <- stopped{r, err, time.Now()}
	}()
	err = pollUntil(ctx, 10*time.Second, 20*time.Millisecond, "dataflow stopping", func() (bool, error) {
		d, err := e.dataflow(ctx, name)
		return err == nil && d.Status == proto.DataflowStopping, err
	})
	if err != nil {
		return t, err
	}
	// Let the daemon ack and send Stop to the node: the stop is in its grace.
	time.Sleep(300 * time.Millisecond)
	select {
	case s := <-done:
		return t, fmt.Errorf("the stop returned before the kill: %s", s.r)
	default:
	}
	if _, err := e.signal("daemon-"+victim, syscall.SIGKILL); err != nil {
		return t, err
	}
	killedAt := time.Now()
	var s stopped
	select {
	case s = <-done:
	case <-time.After(crashGrace + 30*time.Second):
		return t, fmt.Errorf("stop of %s not answered %s after the kill", name, crashGrace+30*time.Second)
	}
	if s.err != nil {
		return t, s.err
	}
	t.answered = s.at.Sub(killedAt)
	t.code = s.r.code
	var rep proto.APIStopReply
	if err := json.Unmarshal([]byte(s.r.stdout), &rep); err != nil {
		return t, fmt.Errorf("stop -o json: %w (%s)", err, s.r)
	}
	for _, nd := range rep.Nodes {
		if nd.ID == "stubborn" {
			t.outcome = nd.Outcome
			t.lost = nd.Status == proto.NodeLost
			t.refused = strings.Contains(nd.Outcome, "refuses connections")
		}
	}
	return t, nil
}

// freezeTrial is one SIGSTOP of a daemon until the coordinator confirms it dead.
type freezeTrial struct {
	suspect time.Duration // SIGSTOP -> first seen suspect (0: never seen)
	dead    time.Duration // SIGSTOP -> first seen dead
	reason  string
}

// settle is how long a fresh victim runs before it is frozen, so every member has
// probed it at least once.
func settle(e *env) time.Duration {
	if e.profile == "wan" {
		return 6 * time.Second
	}
	return 1500 * time.Millisecond
}

// freeze stops a fresh victim daemon with SIGSTOP and polls `doractl members -o json`
// until the coordinator shows it dead; then the victim is killed.
func freeze(ctx context.Context, e *env, n int, within time.Duration) (freezeTrial, error) {
	var t freezeTrial
	victim := fmt.Sprintf("freeze%02d", n)
	if err := e.up(ctx, machines(victim)...); err != nil {
		return t, err
	}
	time.Sleep(settle(e))
	name := "daemon-" + victim
	pid, err := e.signal(name, syscall.SIGSTOP)
	if err != nil {
		return t, err
	}
	defer func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}()
	stoppedAt := time.Now()
	err = pollUntil(ctx, within, pollInterval, name+" confirmed dead", func() (bool, error) {
		m, ok, err := e.member(ctx, name)
		if err != nil || !ok {
			return false, err
		}
		el := time.Since(stoppedAt)
		if m.Status == proto.MemberSuspect && t.suspect == 0 {
			t.suspect = el
		}
		if m.Status == proto.MemberDead {
			t.dead, t.reason = el, m.Reason
			return true, nil
		}
		return false, nil
	})
	return t, err
}

// stallTrial is one SIGSTOP of a given length followed by SIGCONT.
type stallTrial struct {
	stall   time.Duration
	dead    bool   // a dead verdict appeared for any daemon
	suspect bool   // a suspect verdict appeared
	reason  string // the first dead verdict's reason
}

// stallObserve is how long verdicts are still watched after SIGCONT: a death timer that
// ran out during the stall may be confirmed a moment after the thaw.
const stallObserve = 2500 * time.Millisecond

// stallRunner runs stall trials, reusing the victim daemon while it survives.
type stallRunner struct {
	e      *env
	victim string
	next   int
}

func (s *stallRunner) trial(ctx context.Context, stall time.Duration) (stallTrial, error) {
	t := stallTrial{stall: stall}
	if s.victim == "" {
		s.next++
		s.victim = fmt.Sprintf("stall%02d", s.next)
		if err := s.e.up(ctx, machines(s.victim)...); err != nil {
			return t, err
		}
		time.Sleep(settle(s.e))
	} else {
		// Let the last thaw's refutation and Lifeguard's local health settle.
		time.Sleep(time.Second)
	}
	name := "daemon-" + s.victim
	watched := map[string]bool{}
	for _, m := range machines(s.victim) {
		watched["daemon-"+m] = true
	}
	pid, err := s.e.signal(name, syscall.SIGSTOP)
	if err != nil {
		return t, err
	}
	stoppedAt := time.Now()
	thawed := false
	var pollErr error
	for time.Since(stoppedAt) < stall+stallObserve {
		if !thawed && time.Since(stoppedAt) >= stall {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				return t, fmt.Errorf("SIGCONT %s: %w", name, err)
			}
			thawed = true
		}
		ms, err := s.e.members(ctx)
		if err != nil {
			pollErr = err
		}
		for _, m := range ms {
			if !watched[m.Name] {
				continue
			}
			switch m.Status {
			case proto.MemberDead:
				if !t.dead {
					t.dead, t.reason = true, m.Name+": "+m.Reason
				}
			case proto.MemberSuspect:
				t.suspect = true
			}
		}
		wait := pollInterval
		if !thawed {
			wait = min(wait, max(0, stall-time.Since(stoppedAt)))
		}
		time.Sleep(wait)
	}
	if !thawed {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if pollErr != nil && !t.dead {
		return t, fmt.Errorf("polling members during the stall: %w", pollErr)
	}
	if t.dead {
		// A falsely dead victim is fenced and rejoins; the next trial takes a fresh one.
		_ = syscall.Kill(pid, syscall.SIGKILL)
		s.victim = ""
	}
	return t, nil
}
