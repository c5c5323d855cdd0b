package failure

import (
	"context"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 12, 0, 1, 123e6, time.Local)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// refusingAddr returns a loopback address where nothing listens any more.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// acceptingAddr returns a loopback address that accepts connections until
// the test ends.
func acceptingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// newTestDetector builds a detector without silence-based suspicion unless
// the config asks for it.
func newTestDetector(t *testing.T, cfg DetectorConfig) *Detector {
	t.Helper()
	if cfg.SuspectAfter == 0 {
		cfg.SuspectAfter = -1
	}
	d := NewDetector(cfg)
	t.Cleanup(d.Close)
	return d
}

func (d *Detector) counters() (confirmations, linkChecks int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.confirmations, d.linkChecks
}

func expectVerdict(t *testing.T, d *Detector, name string, want Verdict, reasonParts ...string) State {
	t.Helper()
	st := d.State(name)
	if st.Verdict != want {
		t.Fatalf("%s: verdict %q (%s), want %q", name, st.Verdict, st.Reason, want)
	}
	for _, p := range reasonParts {
		if !strings.Contains(st.Reason, p) {
			t.Fatalf("%s: reason %q does not contain %q", name, st.Reason, p)
		}
	}
	return st
}

func expectNotDone(t *testing.T, p *Pending) {
	t.Helper()
	select {
	case <-p.Done():
		t.Fatalf("pending %q on %q failed: %v", p.Op(), p.Member(), p.Err())
	default:
	}
}

// expectFailedWithin waits at most d for p to fail and returns its error.
func expectFailedWithin(t *testing.T, p *Pending, d time.Duration) *DeathError {
	t.Helper()
	select {
	case <-p.Done():
	default:
		select {
		case <-p.Done():
		case <-time.After(d):
			t.Fatalf("pending %q on %q not failed within %s", p.Op(), p.Member(), d)
		}
	}
	var de *DeathError
	if !errors.As(p.Err(), &de) {
		t.Fatalf("pending error %v is not a *DeathError", p.Err())
	}
	return de
}

func addPending(t *testing.T, d *Detector, member, op string) *Pending {
	t.Helper()
	p, err := d.Pending().Add(member, op)
	if err != nil {
		t.Fatalf("Add(%s, %s): %v", member, op, err)
	}
	return p
}

func TestGoneWithLeaveIntentIsLeftAtOnce(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop dataflow df1")
	d.GossipGone("daemon-a", true)
	expectVerdict(t, d, "daemon-a", Left, "left: announced graceful leave")
	de := expectFailedWithin(t, p, 0)
	if de.Verdict != Left || de.Member != "daemon-a" || de.Op != "stop dataflow df1" {
		t.Fatalf("DeathError = %+v", de)
	}
	if !strings.Contains(de.Error(), `daemon "daemon-a" left at `) {
		t.Fatalf("error text: %s", de.Error())
	}
}

func TestGoneButControlLinkAnswersStaysSuspect(t *testing.T) {
	var calls atomic.Int32
	d := newTestDetector(t, DetectorConfig{
		ControlCheck: func(ctx context.Context, name string) error { calls.Add(1); return nil },
	})
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop")
	d.GossipGone("daemon-a", false)
	expectVerdict(t, d, "daemon-a", Suspect, "gossip: declared dead by memberlist")
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if c, _ := d.counters(); c < 1 {
			return errors.New("no confirmation finished")
		}
		return nil
	})
	expectVerdict(t, d, "daemon-a", Suspect, "control link answers")
	expectNotDone(t, p)
	if calls.Load() == 0 {
		t.Fatal("control check not called")
	}

	d.GossipJoin("daemon-a", "")
	expectVerdict(t, d, "daemon-a", Alive, "refuted")
	expectNotDone(t, p)
	p.Complete()
	if n := d.Pending().Len("daemon-a"); n != 0 {
		t.Fatalf("%d pending after Complete", n)
	}
}

func TestGoneAndControlLinkFailsIsDeadFast(t *testing.T) {
	deathErrorText := regexp.MustCompile(`^daemon "daemon-a" confirmed dead at \d\d:\d\d:\d\d\.\d{3} \(gossip: declared dead by memberlist; .+\) while waiting for stop dataflow df1$`)
	d := newTestDetector(t, DetectorConfig{
		ControlCheck: func(ctx context.Context, name string) error { return errors.New("no session") },
	})
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop dataflow df1")
	start := time.Now()
	d.GossipGone("daemon-a", false)
	de := expectFailedWithin(t, p, 50*time.Millisecond)
	t.Logf("pending failed %s after the gossip verdict: %v", time.Since(start), de)
	if de.Member != "daemon-a" || de.Verdict != Dead || !strings.Contains(de.Reason, "control link: no session") {
		t.Fatalf("DeathError = %+v", de)
	}
	if !deathErrorText.MatchString(de.Error()) {
		t.Fatalf("error text %q", de.Error())
	}
	expectVerdict(t, d, "daemon-a", Dead, "control link: no session")
}

func TestGoneAndControlLinkSilentIsDeadAfterTimeout(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{
		ConfirmProbeTimeout: 200 * time.Millisecond,
		ControlCheck: func(ctx context.Context, name string) error {
			<-ctx.Done()
			return ctx.Err()
		},
	})
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop")
	d.GossipGone("daemon-a", false)
	expectVerdict(t, d, "daemon-a", Suspect)
	de := expectFailedWithin(t, p, 2*time.Second)
	if !strings.Contains(de.Reason, "control link: no answer for 200ms") || !strings.Contains(de.Reason, "accepts connections") {
		t.Fatalf("reason %q", de.Reason)
	}
}

func TestGoneWithoutChecksUsesThePort(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	d.GossipJoin("open", acceptingAddr(t))
	d.GossipJoin("closed", refusingAddr(t))
	d.GossipJoin("unknown-addr", "")
	d.GossipGone("open", false)
	d.GossipGone("closed", false)
	d.GossipGone("unknown-addr", false)
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if c, _ := d.counters(); c < 3 {
			return fmt.Errorf("%d confirmations finished", c)
		}
		return nil
	})
	expectVerdict(t, d, "open", Suspect, "accepts connections")
	expectVerdict(t, d, "closed", Dead, "process gone", "refuses connections")
	expectVerdict(t, d, "unknown-addr", Dead, "no control link or control address")
}

func TestLinkDownWithRefusedPortIsDeadAtOnce(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	addr := refusingAddr(t)
	d.GossipJoin("daemon-a", addr)
	p := addPending(t, d, "daemon-a", "logs")
	d.LinkDown("daemon-a", io.EOF)
	de := expectFailedWithin(t, p, 100*time.Millisecond)
	if !strings.Contains(de.Reason, "process gone: port "+addr+" refuses connections, control link reset (EOF)") {
		t.Fatalf("reason %q", de.Reason)
	}
	expectVerdict(t, d, "daemon-a", Dead, "process gone")
}

// A daemon killed right after it registered: its gossip join event arrives after the
// link reset. That update must not discard the port check the reset started.
func TestLinkDownThenLateJoinEventStillDeadAtOnce(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	addr := refusingAddr(t)
	d.GossipJoin("daemon-a", addr)
	d.LinkUp("daemon-a")
	p := addPending(t, d, "daemon-a", "stop")
	d.LinkDown("daemon-a", io.EOF)
	d.GossipJoin("daemon-a", addr) // the join event, late
	de := expectFailedWithin(t, p, 200*time.Millisecond)
	if !strings.Contains(de.Reason, "refuses connections") {
		t.Fatalf("reason %q", de.Reason)
	}
}

func TestLinkDownWithOpenPortIsOnlySuspect(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop")
	d.LinkDown("daemon-a", errors.New("connection reset by peer"))
	expectVerdict(t, d, "daemon-a", Suspect, "control link: down")
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if _, n := d.counters(); n < 1 {
			return errors.New("no link check finished")
		}
		return nil
	})
	expectVerdict(t, d, "daemon-a", Suspect, "still accepts connections")
	expectNotDone(t, p)

	d.LinkUp("daemon-a")
	expectVerdict(t, d, "daemon-a", Alive, "control link: up")
	expectNotDone(t, p)

	// Link down, then gossip says gone: nothing answers any more.
	d.LinkDown("daemon-a", io.EOF)
	d.GossipGone("daemon-a", false)
	de := expectFailedWithin(t, p, 50*time.Millisecond)
	if !strings.Contains(de.Reason, "gossip: declared dead by memberlist; control link: down (EOF)") {
		t.Fatalf("reason %q", de.Reason)
	}
}

func kill(t *testing.T, d *Detector, name string) State {
	t.Helper()
	d.GossipJoin(name, refusingAddr(t))
	d.LinkDown(name, io.EOF)
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if st := d.State(name); st.Verdict != Dead {
			return fmt.Errorf("%s is %s", name, st.Verdict)
		}
		return nil
	})
	return d.State(name)
}

func TestAddOnDeadMemberFailsAtOnce(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	st := kill(t, d, "daemon-a")
	p, err := d.Pending().Add("daemon-a", "start dataflow df2")
	if p != nil || err == nil {
		t.Fatalf("Add on a dead member = %v, %v", p, err)
	}
	var de *DeathError
	if !errors.As(err, &de) || de.Member != "daemon-a" || de.Verdict != Dead || !de.Since.Equal(st.Since) || de.Reason != st.Reason {
		t.Fatalf("error = %#v", err)
	}
	for _, part := range []string{`daemon "daemon-a"`, "confirmed dead", st.Since.Format(timeFormat), "process gone", "start dataflow df2"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
}

func TestRejoinAfterDeathIsAlive(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	ch, cancel := d.Subscribe()
	defer cancel()
	kill(t, d, "daemon-a")
	d.GossipJoin("daemon-a", acceptingAddr(t))
	expectVerdict(t, d, "daemon-a", Alive, "rejoined")
	p := addPending(t, d, "daemon-a", "stop")
	expectNotDone(t, p)

	var got []Verdict
	for len(got) < 4 {
		select {
		case st := <-ch:
			got = append(got, st.Verdict)
		case <-time.After(2 * time.Second):
			t.Fatalf("verdict changes so far: %v", got)
		}
	}
	if want := []Verdict{Alive, Suspect, Dead, Alive}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("verdict changes %v, want %v", got, want)
	}
}

func TestSilenceIsSuspicionNotDeath(t *testing.T) {
	clock := newFakeClock()
	d := newTestDetector(t, DetectorConfig{SuspectAfter: time.Second, ProbeInterval: time.Hour, Now: clock.Now})
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop")
	clock.Advance(500 * time.Millisecond)
	d.sweep()
	expectVerdict(t, d, "daemon-a", Alive)
	clock.Advance(time.Second)
	d.sweep()
	expectVerdict(t, d, "daemon-a", Suspect, "no gossip RTT or control-link traffic since 12:00:01.123")
	expectNotDone(t, p)
	d.Heard("daemon-a")
	expectVerdict(t, d, "daemon-a", Alive, "heard again")
	expectNotDone(t, p)
}

func TestPingKeepsQuietMembersAlive(t *testing.T) {
	clock := newFakeClock()
	var pings atomic.Int32
	d := newTestDetector(t, DetectorConfig{
		SuspectAfter: time.Second, ProbeInterval: time.Hour, Now: clock.Now,
		Ping: func(ctx context.Context, name string) error { pings.Add(1); return nil },
	})
	d.GossipJoin("daemon-a", "")
	clock.Advance(600 * time.Millisecond)
	d.sweep()
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if m := d.members["daemon-a"]; m.pinging || !m.lastHeard.Equal(clock.Now()) {
			return errors.New("ping not answered yet")
		}
		return nil
	})
	clock.Advance(600 * time.Millisecond)
	d.sweep()
	expectVerdict(t, d, "daemon-a", Alive)
	if pings.Load() == 0 {
		t.Fatal("no ping")
	}
}

// Every Add either fails at once or is failed by the death: none is lost.
func TestAddRacingWithDeathLosesNothing(t *testing.T) {
	d := newTestDetector(t, DetectorConfig{})
	addr := refusingAddr(t)
	for i := range 20 {
		name := fmt.Sprintf("daemon-%d", i)
		d.GossipJoin(name, addr)
		var wg sync.WaitGroup
		var pendings []*Pending
		var mu sync.Mutex
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if p, err := d.Pending().Add(name, "op"); err == nil {
						mu.Lock()
						pendings = append(pendings, p)
						mu.Unlock()
					}
				}
			}()
		}
		d.LinkDown(name, io.EOF)
		wg.Wait()
		testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
			if d.State(name).Verdict != Dead {
				return errors.New("not dead yet")
			}
			return nil
		})
		for _, p := range pendings {
			expectFailedWithin(t, p, time.Second)
		}
	}
}

func TestSubscriberDropsOldest(t *testing.T) {
	h := newHub(2)
	ch, cancel := h.subscribe()
	for i := range 5 {
		h.publish(State{Name: fmt.Sprint(i)})
	}
	if a, b := <-ch, <-ch; a.Name != "3" || b.Name != "4" {
		t.Fatalf("got %s, %s; want the newest two", a.Name, b.Name)
	}
	if n := h.droppedTotal(); n != 3 {
		t.Fatalf("dropped %d, want 3", n)
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	h.closeAll()
}

func TestHeartbeatDetector(t *testing.T) {
	clock := newFakeClock()
	h := NewHeartbeatDetector(HeartbeatConfig{Now: clock.Now})
	defer h.Close()
	h.Beat("daemon-a")
	p, err := h.Pending().Add("daemon-a", "stop")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(15 * time.Second)
	h.sweep()
	if st := h.State("daemon-a"); st.Verdict != Alive {
		t.Fatalf("after 15s: %+v", st)
	}
	clock.Advance(6 * time.Second)
	h.sweep()
	if st := h.State("daemon-a"); st.Verdict != Dead || !strings.Contains(st.Reason, "none for 20s") {
		t.Fatalf("after 21s: %+v", st)
	}
	de := expectFailedWithin(t, p, 0)
	if de.Member != "daemon-a" {
		t.Fatalf("%+v", de)
	}
	if _, err := h.Pending().Add("daemon-a", "stop"); err == nil {
		t.Fatal("Add on a dead member succeeded")
	}
	h.Beat("daemon-a")
	if st := h.State("daemon-a"); st.Verdict != Alive {
		t.Fatalf("after a new beat: %+v", st)
	}
	if len(h.States()) != 1 {
		t.Fatalf("States() = %v", h.States())
	}
}

// frozenDetector is a detector with a stall grace whose control link never answers, on a
// fake clock.
func frozenDetector(t *testing.T, clock *fakeClock, dialPort func(ctx context.Context, addr string) error) *Detector {
	t.Helper()
	return newTestDetector(t, DetectorConfig{
		StallGrace:          10 * time.Second,
		ProbeInterval:       10 * time.Millisecond,
		ConfirmProbeTimeout: 100 * time.Millisecond,
		ControlCheck:        func(ctx context.Context, name string) error { return errors.New("no answer") },
		DialPort:            dialPort,
		Now:                 clock.Now,
	})
}

func waitConfirmations(t *testing.T, d *Detector, n int) {
	t.Helper()
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if c, _ := d.counters(); c < n {
			return fmt.Errorf("%d confirmations, want %d", c, n)
		}
		return nil
	})
}

func TestStallGraceKeepsFrozenMemberSuspect(t *testing.T) {
	clock := newFakeClock()
	d := frozenDetector(t, clock, nil)
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop")
	clock.Advance(4 * time.Second) // unheard since the join
	d.GossipGone("daemon-a", false)
	waitConfirmations(t, d, 1)
	expectVerdict(t, d, "daemon-a", Suspect, "accepts connections", "frozen or starved (unheard for 4s, port open): dead at 10s unless it answers")
	expectNotDone(t, p)

	// The link closing meanwhile (idle timeout) is no proof either: the port still accepts.
	d.LinkDown("daemon-a", errors.New("idle timeout"))
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if _, lc := d.counters(); lc < 1 {
			return errors.New("link check not finished")
		}
		return nil
	})
	expectVerdict(t, d, "daemon-a", Suspect)
	expectNotDone(t, p)

	clock.Advance(7 * time.Second) // 11 s unheard: past the grace; the sweep re-confirms
	de := expectFailedWithin(t, p, 2*time.Second)
	if !strings.Contains(de.Reason, "frozen: unheard for 11s (stall grace 10s), port open") {
		t.Fatalf("reason %q", de.Reason)
	}
	expectVerdict(t, d, "daemon-a", Dead, "accepts connections")
}

func TestStallGraceFrozenMemberThatThawsIsAlive(t *testing.T) {
	clock := newFakeClock()
	d := frozenDetector(t, clock, nil)
	d.GossipJoin("daemon-a", acceptingAddr(t))
	p := addPending(t, d, "daemon-a", "stop")
	d.GossipGone("daemon-a", false)
	waitConfirmations(t, d, 1)
	expectVerdict(t, d, "daemon-a", Suspect, "frozen or starved")
	clock.Advance(8 * time.Second)
	d.GossipJoin("daemon-a", "") // refuted after the thaw
	expectVerdict(t, d, "daemon-a", Alive, "refuted")
	expectNotDone(t, p)
}

func TestStallGraceDoesNotDelayProvenDeaths(t *testing.T) {
	clock := newFakeClock()
	unreachable := func(ctx context.Context, addr string) error {
		<-ctx.Done()
		return fmt.Errorf("dial %s: %w", addr, ctx.Err())
	}
	for _, tc := range []struct {
		name, addr string
		dial       func(ctx context.Context, addr string) error
		reason     string
	}{
		{"crashed", refusingAddr(t), nil, "refuses connections"},
		{"vanished", "192.0.2.1:7000", unreachable, "no answer for"},
	} {
		d := frozenDetector(t, clock, tc.dial)
		d.GossipJoin(tc.name, tc.addr)
		p := addPending(t, d, tc.name, "stop")
		d.GossipGone(tc.name, false)
		de := expectFailedWithin(t, p, 2*time.Second)
		if !strings.Contains(de.Reason, tc.reason) {
			t.Fatalf("%s: reason %q, want %q", tc.name, de.Reason, tc.reason)
		}
	}
}

// On a lossy link one lost SYN must not make a live host look gone: with a stall grace
// the port is dialled again while the confirmation has time.
func TestStallGraceRedialsALostSYN(t *testing.T) {
	clock := newFakeClock()
	addr := acceptingAddr(t)
	var dials atomic.Int32
	lossy := func(ctx context.Context, a string) error {
		if dials.Add(1) <= 2 {
			<-ctx.Done() // the SYN was lost: the dial times out
			return fmt.Errorf("dial %s: %w", a, ctx.Err())
		}
		var dialer net.Dialer
		c, err := dialer.DialContext(ctx, "tcp", a)
		if err != nil {
			return err
		}
		return c.Close()
	}
	d := newTestDetector(t, DetectorConfig{
		StallGrace:          10 * time.Second,
		ProbeInterval:       time.Hour, // one confirmation only
		ConfirmProbeTimeout: 2 * time.Second,
		DialTimeout:         100 * time.Millisecond,
		ControlCheck:        func(ctx context.Context, name string) error { return errors.New("no session") },
		DialPort:            lossy,
		Now:                 clock.Now,
	})
	d.GossipJoin("daemon-a", addr)
	p := addPending(t, d, "daemon-a", "stop")
	d.GossipGone("daemon-a", false)
	waitConfirmations(t, d, 1)
	expectVerdict(t, d, "daemon-a", Suspect, "frozen or starved")
	expectNotDone(t, p)
	if n := dials.Load(); n != 3 {
		t.Fatalf("%d dials, want 3 (two lost SYNs, then an answer)", n)
	}
}

// precheckDetector has silence-based suspicion, a control link that never answers and
// a gossip ping that times out, on a fake clock; sweeps run every 10 ms.
func precheckDetector(t *testing.T, clock *fakeClock, dialPort func(ctx context.Context, addr string) error) *Detector {
	t.Helper()
	return newTestDetector(t, DetectorConfig{
		SuspectAfter:        time.Second,
		ProbeInterval:       10 * time.Millisecond,
		ConfirmProbeTimeout: 200 * time.Millisecond,
		ControlCheck:        func(ctx context.Context, name string) error { return errors.New("no session") },
		Ping: func(ctx context.Context, name string) error {
			<-ctx.Done()
			return ctx.Err()
		},
		DialPort: dialPort,
		Now:      clock.Now,
	})
}

func waitPrechecks(t *testing.T, d *Detector, n int) {
	t.Helper()
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.prechecks < n {
			return fmt.Errorf("%d prechecks, want %d", d.prechecks, n)
		}
		return nil
	})
}

// unreachable is the dial of a host that vanished: no answer until the deadline.
func unreachable(ctx context.Context, addr string) error {
	<-ctx.Done()
	return fmt.Errorf("dial %s: %w", addr, ctx.Err())
}

// A host that stopped answering altogether was checked while it was silent, so gossip's
// verdict needs no second wait.
func TestPrecheckedVanishedHostIsDeadWithGossip(t *testing.T) {
	clock := newFakeClock()
	d := precheckDetector(t, clock, unreachable)
	d.GossipJoin("daemon-a", "192.0.2.1:7000")
	p := addPending(t, d, "daemon-a", "stop")
	clock.Advance(1500 * time.Millisecond)
	waitPrechecks(t, d, 1)
	expectVerdict(t, d, "daemon-a", Suspect, "no gossip RTT or control-link traffic")
	expectNotDone(t, p)

	d.GossipGone("daemon-a", false)
	st := expectVerdict(t, d, "daemon-a", Dead, "gossip: declared dead by memberlist", "control link: no session",
		"port 192.0.2.1:7000: no answer for", "checked before the verdict; unheard since 12:00:01.123")
	de := expectFailedWithin(t, p, 0)
	if de.Reason != st.Reason {
		t.Fatalf("pending failed with %q, verdict %q", de.Reason, st.Reason)
	}
}

// What a precheck found is no proof when the port accepts connections (a stalled
// process: the post-verdict confirmation keeps its window), when the member was heard
// since, or when it is stale.
func TestPrecheckDoesNotShortcutOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dial  func(ctx context.Context, addr string) error
		after func(d *Detector, clock *fakeClock)
	}{
		{"port-open", func(ctx context.Context, addr string) error { return nil }, func(*Detector, *fakeClock) {}},
		{"heard-since", unreachable, func(d *Detector, clock *fakeClock) {
			clock.Advance(10 * time.Millisecond)
			d.Heard("daemon-a")
		}},
		{"stale", unreachable, func(d *Detector, clock *fakeClock) {
			d.mu.Lock()
			d.members["daemon-a"].silent = false // no further prechecks
			d.mu.Unlock()
			d.Close() // nor sweeps
			clock.Advance(time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			d := precheckDetector(t, clock, tc.dial)
			d.GossipJoin("daemon-a", "192.0.2.1:7000")
			clock.Advance(1500 * time.Millisecond)
			waitPrechecks(t, d, 1)
			tc.after(d, clock)
			d.GossipGone("daemon-a", false)
			expectVerdict(t, d, "daemon-a", Suspect, "gossip: declared dead by memberlist, confirming")
		})
	}
}

// A precheck that is still running when the member dies and comes back is dropped, and
// does not keep the member from being prechecked again.
func TestPrecheckOutlivedByARevival(t *testing.T) {
	clock := newFakeClock()
	d := precheckDetector(t, clock, unreachable)
	d.GossipJoin("daemon-a", "192.0.2.1:7000")
	clock.Advance(1500 * time.Millisecond)
	testutil.CheckFor(t, 2*time.Second, time.Millisecond, func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.members["daemon-a"].prechecking {
			return errors.New("no precheck running yet")
		}
		return nil
	})
	d.Declare("daemon-a", Dead, "test")
	d.GossipJoin("daemon-a", "192.0.2.1:7000") // back, as a new generation
	clock.Advance(1500 * time.Millisecond)     // and silent again
	waitPrechecks(t, d, 1)                     // a precheck of the new generation completed
	d.mu.Lock()
	pc := d.members["daemon-a"].precheck
	gen := d.members["daemon-a"].gen
	d.mu.Unlock()
	if pc == nil || pc.gen != gen {
		t.Fatalf("precheck %+v, member generation %d", pc, gen)
	}
}
