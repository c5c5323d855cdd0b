package failure

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// HeartbeatConfig configures a HeartbeatDetector.
type HeartbeatConfig struct {
	// Interval is how often members are expected to beat; the detector
	// checks for timeouts five times per interval.
	Interval time.Duration
	// Timeout is how long without a beat before a member is dead.
	Timeout time.Duration
	// SubscriberBuffer is the capacity of each Subscribe channel.
	SubscriberBuffer int
	// Logger receives verdict changes.
	Logger hclog.Logger
	// Now is the clock, replaceable in tests.
	Now func() time.Time
}

// DefaultHeartbeatConfig returns dora-rs's scheme.
func DefaultHeartbeatConfig() HeartbeatConfig {
	return HeartbeatConfig{
		// dora daemons send a heartbeat every 5 s.
		Interval: 5 * time.Second,
		// dora declares a daemon dead after 20 s without one.
		Timeout: 20 * time.Second,
		// Same as the Detector.
		SubscriberBuffer: 256,
		// Discard logs.
		Logger: hclog.NewNullLogger(),
		// The wall clock.
		Now: time.Now,
	}
}

// HeartbeatDetector is the baseline central-heartbeat detector, for
// benchmarks: a member is alive while it beats and dead after Timeout
// without a beat. It has no suspicion and no confirmation.
type HeartbeatDetector struct {
	cfg    HeartbeatConfig
	reg    *Registry
	hub    *hub
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	members map[string]*hbMember
}

type hbMember struct {
	state    State
	lastBeat time.Time
}

// NewHeartbeatDetector starts a heartbeat detector. Call Close to stop it.
func NewHeartbeatDetector(cfg HeartbeatConfig) *HeartbeatDetector {
	def := DefaultHeartbeatConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = def.SubscriberBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = def.Logger
	}
	if cfg.Now == nil {
		cfg.Now = def.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &HeartbeatDetector{
		cfg:     cfg,
		reg:     newRegistry(),
		hub:     newHub(cfg.SubscriberBuffer),
		cancel:  cancel,
		members: make(map[string]*hbMember),
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(max(cfg.Interval/5, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.sweep()
			}
		}
	}()
	return h
}

// Close stops the detector and closes every subscription.
func (h *HeartbeatDetector) Close() {
	h.cancel()
	h.wg.Wait()
	h.hub.closeAll()
}

// Beat records a heartbeat from a member; a dead member is alive again.
func (h *HeartbeatDetector) Beat(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	m, ok := h.members[name]
	if !ok {
		m = &hbMember{state: State{Name: name, Verdict: Alive, Since: now, Reason: "first heartbeat"}}
		h.members[name] = m
		h.hub.publish(m.state)
	}
	m.lastBeat = now
	if m.state.Verdict == Dead {
		m.state = State{Name: name, Verdict: Alive, Since: now, Reason: "heartbeat again"}
		h.reg.memberBack(name)
		h.cfg.Logger.Info("member verdict changed", "member", name, "to", Alive, "reason", m.state.Reason)
		h.hub.publish(m.state)
	}
}

func (h *HeartbeatDetector) sweep() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	for name, m := range h.members {
		if m.state.Verdict == Dead || now.Sub(m.lastBeat) <= h.cfg.Timeout {
			continue
		}
		m.state = State{Name: name, Verdict: Dead, Since: now,
			Reason: fmt.Sprintf("heartbeat: none for %s (last at %s)", h.cfg.Timeout, m.lastBeat.Format(timeFormat))}
		failed := h.reg.memberGone(m.state)
		h.cfg.Logger.Warn("member verdict changed", "member", name, "to", Dead, "reason", m.state.Reason, "pending_failed", failed)
		h.hub.publish(m.state)
	}
}

// State returns a member's state. An unknown member has an empty Verdict.
func (h *HeartbeatDetector) State(name string) State {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m, ok := h.members[name]; ok {
		return m.state
	}
	return State{Name: name, Reason: "unknown member"}
}

// States returns every member's state, sorted by name.
func (h *HeartbeatDetector) States() []State {
	h.mu.Lock()
	out := make([]State, 0, len(h.members))
	for _, m := range h.members {
		out = append(out, m.state)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Subscribe returns a channel of verdict changes, as Detector.Subscribe.
func (h *HeartbeatDetector) Subscribe() (<-chan State, func()) { return h.hub.subscribe() }

// Dropped is the number of verdict changes dropped for slow subscribers.
func (h *HeartbeatDetector) Dropped() uint64 { return h.hub.droppedTotal() }

// Pending returns the registry of operations waiting on members.
func (h *HeartbeatDetector) Pending() *Registry { return h.reg }
