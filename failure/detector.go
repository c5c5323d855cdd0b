package failure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DetectorConfig configures a Detector. Start from DefaultDetectorConfig;
// zero fields take their defaults.
type DetectorConfig struct {
	// SuspectAfter is how long a member may go without a gossip RTT or
	// control-link traffic (see Heard) before it is suspected. Negative
	// disables silence-based suspicion.
	SuspectAfter time.Duration
	// ConfirmProbeTimeout is how long to try the control link and the
	// control port when gossip reports a member gone, before confirming
	// its death.
	ConfirmProbeTimeout time.Duration
	// ProbeInterval is how often silence is checked, silent members are
	// pinged (see Ping) and unconfirmed gossip deaths are re-checked.
	ProbeInterval time.Duration
	// DialTimeout bounds the reachability dial of a control port.
	DialTimeout time.Duration
	// StallGrace is how long a member that gossip declared dead may stay
	// suspect while it answers nothing (no control-link answer, no gossip
	// ping) but its control port still accepts connections: its host's
	// kernel answers, so the process exists but does not run (stopped,
	// starved, swapping). It counts from when the member was last heard. 0
	// confirms such a member dead with gossip. A port that refuses
	// connections (process gone) or does not answer (host gone or cut off)
	// confirms the death at once either way.
	StallGrace time.Duration
	// DialPort replaces the TCP dial of a control port (see DialTimeout); it
	// returns nil if something accepts connections there. Optional.
	DialPort func(ctx context.Context, addr string) error
	// ControlCheck asks the member something over the control link and
	// returns nil if it answered; it must return when ctx is done. Optional.
	ControlCheck func(ctx context.Context, name string) error
	// Ping probes the member directly (e.g. a gossip ping) and returns nil
	// if it answered; it must return when ctx is done. Optional: when set,
	// members silent for SuspectAfter/2 are pinged, and a ping answer
	// counts as the member answering during confirmation.
	Ping func(ctx context.Context, name string) error
	// SubscriberBuffer is the capacity of each Subscribe channel.
	SubscriberBuffer int
	// Logger receives verdict changes and diagnostics.
	Logger hclog.Logger
	// Now is the clock, replaceable in tests.
	Now func() time.Time
}

// DefaultDetectorConfig returns the default detector configuration.
func DefaultDetectorConfig() DetectorConfig {
	return DetectorConfig{
		// 1.5 probe intervals of the lan profile: a member unheard for longer
		// is not answering.
		SuspectAfter: 1500 * time.Millisecond,
		// Long enough for a loaded control loop to answer, short enough to
		// fail pending work about a second after memberlist's verdict.
		ConfirmProbeTimeout: time.Second,
		// Twice per lan probe interval.
		ProbeInterval: 500 * time.Millisecond,
		// A refused connection answers in about a millisecond; a live port
		// on a LAN well under this.
		DialTimeout: 300 * time.Millisecond,
		// A frozen process is dead with gossip (the lan profile's choice).
		StallGrace: 0,
		// A real TCP dial.
		DialPort: nil,
		// No control-link check: confirmation relies on the port dial.
		ControlCheck: nil,
		// No active probe.
		Ping: nil,
		// Room for a burst of verdict changes of a large fleet.
		SubscriberBuffer: 256,
		// Discard logs.
		Logger: hclog.NewNullLogger(),
		// The wall clock.
		Now: time.Now,
	}
}

func (c DetectorConfig) withDefaults() DetectorConfig {
	def := DefaultDetectorConfig()
	if c.SuspectAfter == 0 {
		c.SuspectAfter = def.SuspectAfter
	}
	if c.ConfirmProbeTimeout <= 0 {
		c.ConfirmProbeTimeout = def.ConfirmProbeTimeout
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = def.ProbeInterval
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = def.DialTimeout
	}
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = def.SubscriberBuffer
	}
	if c.Logger == nil {
		c.Logger = def.Logger
	}
	if c.Now == nil {
		c.Now = def.Now
	}
	return c
}

// member is the detector's record of one member.
type member struct {
	name        string
	controlAddr string
	state       State
	lastHeard   time.Time

	// Causes of suspicion, each with its note for the reason.
	gossipGone bool
	gossipNote string
	linkDown   bool
	linkCause  string
	linkNote   string
	silent     bool
	silentNote string

	gen         uint64 // bumped when the member comes back: drops stale checks
	linkGen     uint64 // bumped on every link change
	confirming  bool
	lastConfirm time.Time
	pinging     bool

	// A silent member is checked before any gossip verdict, back to back, so that a
	// verdict on a host that stopped answering altogether needs no further wait.
	prechecking bool
	precheck    *precheck
}

// precheck is a confirmation run on a silent member before gossip's verdict.
type precheck struct {
	gen      uint64 // member generation it was run for
	started  time.Time
	finished time.Time
	out      confirmOutcome
	reason   string
}

// Detector decides member verdicts for a coordinator from gossip events,
// control-link health and reachability probes, and fails pending work when
// a member is confirmed dead. Its inputs never block: checks run on their
// own goroutines.
type Detector struct {
	cfg    DetectorConfig
	logger hclog.Logger
	reg    *Registry
	hub    *hub
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	members map[string]*member
	closed  bool

	// Counters of completed checks, for tests.
	confirmations int
	linkChecks    int
	prechecks     int
}

// NewDetector starts a detector. Call Close to stop it.
func NewDetector(cfg DetectorConfig) *Detector {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Detector{
		cfg:     cfg,
		logger:  cfg.Logger,
		reg:     newRegistry(),
		hub:     newHub(cfg.SubscriberBuffer),
		ctx:     ctx,
		cancel:  cancel,
		members: make(map[string]*member),
	}
	d.wg.Add(1)
	go d.loop()
	return d
}

// Close stops the detector's checks and closes every subscription.
func (d *Detector) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.hub.closeAll()
}

// Pending returns the registry of operations waiting on members.
func (d *Detector) Pending() *Registry { return d.reg }

// Subscribe returns a channel of verdict changes and a function that ends
// the subscription. The channel never blocks the detector: a subscriber that
// falls behind loses its oldest changes and can resynchronise with States.
func (d *Detector) Subscribe() (<-chan State, func()) { return d.hub.subscribe() }

// Dropped is the number of verdict changes dropped for slow subscribers so
// far; when it grows, subscribers should resynchronise with States.
func (d *Detector) Dropped() uint64 { return d.hub.droppedTotal() }

// State returns a member's state. An unknown member has an empty Verdict.
func (d *Detector) State(name string) State {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.members[name]; ok {
		return m.state
	}
	return State{Name: name, Reason: "unknown member"}
}

// States returns every member's state, sorted by name.
func (d *Detector) States() []State {
	d.mu.Lock()
	out := make([]State, 0, len(d.members))
	for _, m := range d.members {
		out = append(out, m.state)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Forget drops a member (e.g. long gone) from the detector.
func (d *Detector) Forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.members, name)
	d.reg.memberBack(name)
}

// Declare gives a member a gone verdict (Dead or Left) on evidence found outside the
// detector, e.g. a member known from a previous run that did not come back in time. Its
// pending operations fail as for any confirmed death; a later join or link revives it.
func (d *Detector) Declare(name string, v Verdict, reason string) {
	if !v.Gone() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	m, _ := d.getOrCreate(name, d.cfg.Now())
	if m.state.Verdict.Gone() {
		return
	}
	m.gen++
	m.confirming = false
	d.setVerdict(m, v, reason)
}

// GossipJoin reports a member alive in the ring (a join or metadata update),
// with its control address. A member thought dead or left is revived.
func (d *Detector) GossipJoin(name string, controlAddr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	m, created := d.getOrCreate(name, now)
	if controlAddr != "" {
		m.controlAddr = controlAddr
	}
	if created {
		d.hub.publish(m.state)
		return
	}
	m.lastHeard = now
	m.silent = false
	wasGossipGone := m.gossipGone
	m.gossipGone, m.gossipNote = false, ""
	if wasGossipGone || m.state.Verdict.Gone() {
		// Back or refuted: a confirmation in flight is stale. A plain join or
		// metadata update (e.g. the join event of a daemon that registered first)
		// leaves in-flight checks alone: a port check started by a link reset
		// still proves the process gone.
		m.gen++
		m.confirming = false
	}
	switch {
	case m.state.Verdict.Gone():
		prev := m.state
		m.linkDown, m.linkNote = false, ""
		d.refresh(m, true, fmt.Sprintf("rejoined: alive in the gossip ring again after %s at %s", prev.Verdict, prev.Since.Format(timeFormat)))
	case wasGossipGone:
		d.refresh(m, false, "refuted: alive in the gossip ring again")
	default:
		d.refresh(m, false, "gossip: alive")
	}
}

// GossipGone reports that memberlist declared a member gone. With leaving
// (the member's leave intent) the verdict is left at once. Otherwise the
// member is suspect while the control link and the control port are tried;
// it is confirmed dead only if the control link does not answer either, or
// the port refuses connections.
func (d *Detector) GossipGone(name string, leaving bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	m, _ := d.getOrCreate(name, now)
	if m.state.Verdict.Gone() {
		return
	}
	if leaving {
		m.gen++
		d.setVerdict(m, Left, "left: announced graceful leave")
		return
	}
	m.gossipGone = true
	if m.linkDown && d.cfg.StallGrace <= 0 {
		d.setVerdict(m, Dead, fmt.Sprintf("gossip: declared dead by memberlist; control link: down (%s)", m.linkCause))
		return
	}
	if pc := m.precheck; pc != nil && d.precheckProves(m, pc, now) {
		d.setVerdict(m, Dead, fmt.Sprintf("%s (checked before the verdict; unheard since %s)", pc.reason, m.lastHeard.Format(timeFormat)))
		return
	}
	m.gossipNote = gossipDeadNote + ", confirming"
	d.refresh(m, false, "")
	d.startConfirm(m)
}

// precheckProves reports whether a check run before gossip's verdict already confirms
// it: it ended recently, found the control port refusing or silent (the host does not
// answer, so a stalled process cannot be mistaken for a vanished host) and nothing else
// answering, and the member has not been heard since it started. Its window of
// silence is as long as a confirmation after the verdict would wait. d.mu held.
func (d *Detector) precheckProves(m *member, pc *precheck, now time.Time) bool {
	return pc.gen == m.gen && pc.out == confirmedDead && m.controlAddr != "" &&
		!m.lastHeard.After(pc.started) &&
		now.Sub(pc.finished) <= d.cfg.ConfirmProbeTimeout+d.cfg.ProbeInterval
}

// startPrecheck checks a silent member's control link, gossip ping and port before
// any gossip verdict (see precheckProves). d.mu held.
func (d *Detector) startPrecheck(m *member, now time.Time) {
	m.prechecking = true
	name, gen, addr := m.name, m.gen, m.controlAddr
	d.async(func(ctx context.Context) {
		out, reason := d.confirm(ctx, name, addr, true)
		d.mu.Lock()
		defer d.mu.Unlock()
		m, ok := d.members[name]
		if !ok {
			return
		}
		m.prechecking = false
		if m.gen != gen {
			return // it came back meanwhile: the result is about its previous life
		}
		m.precheck = &precheck{gen: gen, started: now, finished: d.cfg.Now(), out: out, reason: reason}
		d.prechecks++
	})
}

// LinkDown reports that the control link to a member closed or reset. The
// control port is dialled at once: if it refuses connections the process is
// gone and the member is dead; otherwise it is suspect until gossip decides.
func (d *Detector) LinkDown(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	m, _ := d.getOrCreate(name, now)
	if m.state.Verdict.Gone() {
		return
	}
	cause := "closed"
	if err != nil {
		cause = err.Error()
	}
	m.linkDown, m.linkCause = true, cause
	m.linkGen++
	if m.gossipGone && d.cfg.StallGrace <= 0 {
		d.setVerdict(m, Dead, fmt.Sprintf("gossip: declared dead by memberlist; control link: down (%s)", cause))
		return
	}
	addr := m.controlAddr
	if addr == "" {
		m.linkNote = fmt.Sprintf("control link: down (%s), no control address to check", cause)
		d.refresh(m, false, "")
		return
	}
	m.linkNote = fmt.Sprintf("control link: down (%s), checking port %s", cause, addr)
	d.refresh(m, false, "")
	linkGen := m.linkGen
	d.async(func(ctx context.Context) {
		err := d.dialUntilRefused(ctx, addr)
		d.applyLinkCheck(name, linkGen, cause, addr, err)
	})
}

// LinkUp reports that the control link to a member is (re-)established.
func (d *Detector) LinkUp(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	m, created := d.getOrCreate(name, now)
	m.linkDown, m.linkNote = false, ""
	m.linkGen++
	m.lastHeard = now
	m.silent = false
	if created {
		d.hub.publish(m.state)
		return
	}
	if m.state.Verdict.Gone() {
		prev := m.state
		m.gen++
		m.confirming = false
		d.refresh(m, true, fmt.Sprintf("rejoined: control link up again after %s at %s", prev.Verdict, prev.Since.Format(timeFormat)))
		return
	}
	d.refresh(m, false, "control link: up")
}

// Heard reports traffic from a member: a control-link message or a gossip
// RTT. It refreshes the member's last-heard time.
func (d *Detector) Heard(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.members[name]
	if !ok || m.state.Verdict.Gone() {
		return
	}
	m.lastHeard = d.cfg.Now()
	if m.silent {
		m.silent = false
		d.refresh(m, false, "heard again")
	}
}

// getOrCreate returns the member's record, creating an alive one. d.mu held.
func (d *Detector) getOrCreate(name string, now time.Time) (*member, bool) {
	if m, ok := d.members[name]; ok {
		return m, false
	}
	m := &member{name: name, lastHeard: now, state: State{Name: name, Verdict: Alive, Since: now, Reason: "joined"}}
	d.members[name] = m
	d.logger.Debug("member known", "member", name)
	return m, true
}

// refresh recomputes a member's verdict from its causes of suspicion: suspect
// if any, else alive with aliveReason. A dead or left member is only changed
// when revive is set. d.mu held.
func (d *Detector) refresh(m *member, revive bool, aliveReason string) {
	if m.state.Verdict.Gone() && !revive {
		return
	}
	var causes []string
	switch {
	case m.gossipGone:
		// Its confirmation note already says what the control link and ping did.
		causes = append(causes, m.gossipNote)
	default:
		if m.linkDown {
			causes = append(causes, m.linkNote)
		}
		if m.silent {
			causes = append(causes, m.silentNote)
		}
	}
	if len(causes) > 0 {
		reason := strings.Join(causes, "; ")
		if revive {
			reason = aliveReason + "; " + reason
		}
		d.setVerdict(m, Suspect, reason)
		return
	}
	if aliveReason == "" {
		aliveReason = "answering"
	}
	d.setVerdict(m, Alive, aliveReason)
}

// setVerdict changes a member's verdict, publishes it and fails or releases
// pending work. The same verdict only updates the reason. d.mu held.
func (d *Detector) setVerdict(m *member, v Verdict, reason string) {
	if m.state.Verdict == v {
		m.state.Reason = reason
		return
	}
	prev := m.state
	m.state = State{Name: m.name, Verdict: v, Since: d.cfg.Now(), Reason: reason}
	failed := 0
	if v.Gone() {
		failed = d.reg.memberGone(m.state)
	} else if prev.Verdict.Gone() {
		d.reg.memberBack(m.name)
	}
	level := hclog.Info
	if v == Dead {
		level = hclog.Warn
	}
	d.logger.Log(level, "member verdict changed", "member", m.name, "from", prev.Verdict, "to", v,
		"reason", reason, "pending_failed", failed)
	d.hub.publish(m.state)
}

// async runs f on its own goroutine, unless the detector is closed. d.mu
// held.
func (d *Detector) async(f func(ctx context.Context)) {
	if d.closed {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f(d.ctx)
	}()
}

// startConfirm starts confirming a gossip death, unless one is running.
// d.mu held.
func (d *Detector) startConfirm(m *member) {
	if m.confirming {
		return
	}
	m.confirming = true
	name, gen, addr := m.name, m.gen, m.controlAddr
	d.async(func(ctx context.Context) {
		out, reason := d.confirm(ctx, name, addr, d.cfg.StallGrace > 0)
		d.applyConfirm(name, gen, out, reason)
	})
}

func (d *Detector) applyConfirm(name string, gen uint64, out confirmOutcome, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.members[name]
	if !ok || m.gen != gen {
		return
	}
	now := d.cfg.Now()
	m.confirming = false
	m.lastConfirm = now
	d.confirmations++
	if m.state.Verdict.Gone() || !m.gossipGone {
		return
	}
	switch out {
	case confirmedDead:
		d.setVerdict(m, Dead, reason)
		return
	case confirmedFrozen:
		quiet := now.Sub(m.lastHeard).Round(100 * time.Millisecond)
		if quiet >= d.cfg.StallGrace {
			d.setVerdict(m, Dead, fmt.Sprintf("frozen: unheard for %s (stall grace %s), port open; %s", quiet, d.cfg.StallGrace, reason))
			return
		}
		reason = fmt.Sprintf("frozen or starved (unheard for %s, port open): dead at %s unless it answers; %s", quiet, d.cfg.StallGrace, reason)
	}
	m.gossipNote = reason
	d.refresh(m, false, "")
}

// dialUntilRefused dials addr, and again after short waits while it does not refuse,
// and returns the last result: a process being killed may still hold its listener for a
// moment after its connections were reset (the kernel closes its files one by one).
func (d *Detector) dialUntilRefused(ctx context.Context, addr string) error {
	recheck := [...]time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}
	var err error
	for _, wait := range recheck {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if err = d.dial(ctx, addr); isRefused(err) {
			return err
		}
	}
	return err
}

func (d *Detector) applyLinkCheck(name string, linkGen uint64, cause, addr string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.members[name]
	// linkGen alone says whether the check is current: a refused port proves the
	// process gone whatever gossip said meanwhile, and a revival clears linkDown.
	if !ok || m.linkGen != linkGen || !m.linkDown || m.state.Verdict.Gone() {
		return
	}
	d.linkChecks++
	switch {
	case isRefused(err):
		d.setVerdict(m, Dead, fmt.Sprintf("process gone: port %s refuses connections, control link reset (%s)", addr, cause))
	case err == nil:
		m.linkNote = fmt.Sprintf("control link: down (%s), port %s still accepts connections, waiting for gossip", cause, addr)
		d.refresh(m, false, "")
	default:
		m.linkNote = fmt.Sprintf("control link: down (%s), port %s: %v, waiting for gossip", cause, addr, err)
		d.refresh(m, false, "")
	}
}

// loop runs the periodic sweep until Close.
func (d *Detector) loop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			d.sweep()
		}
	}
}

// sweep suspects silent members, pings members going quiet and re-checks
// unconfirmed gossip deaths.
func (d *Detector) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	for _, m := range d.members {
		if m.state.Verdict.Gone() {
			continue
		}
		quiet := now.Sub(m.lastHeard)
		if d.cfg.SuspectAfter > 0 && !m.silent && quiet > d.cfg.SuspectAfter {
			m.silent = true
			m.silentNote = fmt.Sprintf("no gossip RTT or control-link traffic since %s", m.lastHeard.Format(timeFormat))
			d.refresh(m, false, "")
		}
		if ping := d.cfg.Ping; ping != nil && !m.pinging && d.cfg.SuspectAfter > 0 && quiet > d.cfg.SuspectAfter/2 {
			m.pinging = true
			name := m.name
			d.async(func(ctx context.Context) {
				pctx, cancel := context.WithTimeout(ctx, d.cfg.ConfirmProbeTimeout)
				err := ping(pctx, name)
				cancel()
				d.mu.Lock()
				if m, ok := d.members[name]; ok {
					m.pinging = false
				}
				d.mu.Unlock()
				if err == nil {
					d.Heard(name)
				}
			})
		}
		if m.gossipGone && !m.confirming && now.Sub(m.lastConfirm) >= d.cfg.ProbeInterval {
			d.startConfirm(m)
		}
		if m.silent && !m.gossipGone && !m.prechecking && m.controlAddr != "" {
			d.startPrecheck(m, now)
		}
	}
}

// Outcomes of one confirmation check.
type checkKind int

const (
	checkAnswered  checkKind = iota // the member answered
	checkReachable                  // the port accepts connections
	checkFailed                     // no answer
	checkRefused                    // the port refuses connections
)

type checkResult struct {
	kind checkKind
	note string
	life bool // from a control-link check or ping, not the port dial
}

// confirmOutcome is what a confirmation found.
type confirmOutcome int

const (
	confirmedAlive  confirmOutcome = iota // something answered: the gossip death is not confirmed
	confirmedDead                         // nothing answered, or the port refuses connections
	confirmedFrozen                       // nothing answered but the port accepts connections (StallGrace > 0)
)

// gossipDeadNote leads the reason of a death memberlist declared.
const gossipDeadNote = "gossip: declared dead by memberlist"

// confirm tries the member's control link, its gossip ping and its control
// port for up to ConfirmProbeTimeout after gossip declared it gone. It
// reports dead if the port refuses connections, or if nothing that was tried
// answered; with wantPort (a StallGrace), nothing answering while the port
// accepts connections is frozen instead, and the port's result is waited for.
func (d *Detector) confirm(ctx context.Context, name, addr string, wantPort bool) (confirmOutcome, string) {
	const prefix = gossipDeadNote
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ConfirmProbeTimeout)
	defer cancel()
	results := make(chan checkResult, 3)
	n := 0
	start := time.Now()
	ask := func(what string, f func(context.Context, string) error) {
		n++
		go func() {
			if err := f(ctx, name); err != nil {
				results <- checkResult{checkFailed, what + ": " + describe(err, time.Since(start)), true}
				return
			}
			results <- checkResult{checkAnswered, what + " answers", true}
		}()
	}
	if d.cfg.ControlCheck != nil {
		ask("control link", d.cfg.ControlCheck)
	}
	if d.cfg.Ping != nil {
		ask("gossip ping", d.cfg.Ping)
	}
	// Without a control-link check or ping, a port that accepts
	// connections is the only sign of life; with them, the port can only
	// prove death, or (with a stall grace) that the host still answers, so
	// their failure is enough unless the port result is wanted.
	lifeChecks := n
	portIsLife := n == 0
	wantPort = wantPort && addr != ""
	if addr != "" {
		n++
		go func() {
			err := d.dial(ctx, addr)
			// With a stall grace the port decides between frozen and gone: a dial that
			// timed out (a lost SYN on a lossy link) is tried again while time is left,
			// so one lost packet does not turn a live host into a dead one.
			for wantPort && err != nil && !isRefused(err) && ctx.Err() == nil {
				err = d.dial(ctx, addr)
			}
			switch {
			case err == nil:
				results <- checkResult{checkReachable, fmt.Sprintf("port %s accepts connections", addr), false}
			case isRefused(err):
				results <- checkResult{checkRefused, fmt.Sprintf("process gone: port %s refuses connections", addr), false}
			default:
				results <- checkResult{checkFailed, fmt.Sprintf("port %s: %s", addr, describe(err, time.Since(start))), false}
			}
		}()
	}
	if n == 0 {
		return confirmedDead, prefix + "; no control link or control address to check"
	}
	var notes []string
	lifeFailed := 0
	reachable, portDone := false, false
	for range n {
		var r checkResult
		select {
		case r = <-results:
		case <-d.ctx.Done():
			return confirmedAlive, prefix + ", confirmation interrupted"
		}
		switch r.kind {
		case checkRefused:
			return confirmedDead, prefix + "; " + r.note
		case checkAnswered:
			return confirmedAlive, prefix + ", but " + r.note
		case checkReachable:
			if portIsLife {
				return confirmedAlive, prefix + ", but " + r.note
			}
			reachable, portDone = true, true
			notes = append(notes, r.note)
		case checkFailed:
			notes = append(notes, r.note)
			if r.life {
				lifeFailed++
			} else {
				portDone = true
			}
		}
		if lifeChecks > 0 && lifeFailed == lifeChecks && (!wantPort || portDone) {
			break
		}
	}
	slices.Sort(notes)
	if reachable && wantPort {
		return confirmedFrozen, prefix + "; " + strings.Join(notes, "; ")
	}
	return confirmedDead, prefix + "; " + strings.Join(notes, "; ")
}

// describe turns a check error into a reason fragment.
func describe(err error, after time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Sprintf("no answer for %s", after.Round(100*time.Millisecond))
	}
	return err.Error()
}
