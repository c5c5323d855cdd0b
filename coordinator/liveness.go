package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/failure"
	"github.com/doractl/doractl/proto"
)

// liveness joins the gossip ring (optional) and the failure detector: ring events and
// daemon link health feed the detector, whose verdicts the coordinator acts on.
type liveness struct {
	det     *failure.Detector
	ring    *cluster.Ring // nil without gossip
	reclaim time.Duration // the profile's DeadNodeReclaimTime
	log     hclog.Logger
	ctx     context.Context // ends at shutdown: background re-joins stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	seen    map[string]cluster.Member // every ring member seen, for members known once but gone
	epochs  map[string]int64          // boot epoch of each daemon's registered process
	joining map[string]int64          // boot epoch whose gossip address is being re-joined
}

// newLiveness joins the ring (with Gossip) and starts the detector. check is the
// detector's direct check of a daemon over its control link.
func newLiveness(cfg *Config, controlAddr string, check func(ctx context.Context, name string) error) (*liveness, error) {
	l := &liveness{log: cfg.Logger.Named("liveness"), seen: map[string]cluster.Member{},
		epochs: map[string]int64{}, joining: map[string]int64{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	dc := failure.DefaultDetectorConfig()
	dc.ControlCheck = check
	dc.Logger = cfg.Logger.Named("detector")
	if cfg.Gossip {
		prof, err := cluster.ResolveProfile(cfg.Profile, cfg.GossipOverrides)
		if err != nil {
			return nil, fmt.Errorf("gossip profile: %w", err)
		}
		dc.StallGrace = prof.StallGrace
		dc.ConfirmProbeTimeout = prof.ConfirmTimeout
		l.reclaim = prof.DeadNodeReclaimTime
		ring, err := createRing(cfg, prof, controlAddr)
		if err != nil {
			return nil, err
		}
		l.ring = ring
		dc.Ping = func(ctx context.Context, name string) error {
			_, err := ring.Ping(ctx, name)
			return err
		}
	}
	l.det = failure.NewDetector(dc)
	return l, nil
}

// createRing joins the coordinator to the gossip ring; daemons join it here.
func createRing(cfg *Config, prof cluster.Profile, controlAddr string) (*cluster.Ring, error) {
	rc := cluster.DefaultConfig()
	rc.Name = cfg.Name
	rc.BindAddr = cfg.GossipBindAddr
	rc.BindPort = cfg.GossipPort
	rc.AdvertiseAddr = cfg.AdvertiseAddr
	rc.Profile = prof
	rc.SecretKey = cfg.SecretKey
	rc.Logger = cfg.Logger.Named("gossip")
	rc.Meta = cluster.Meta{
		Role:        cluster.RoleCoordinator,
		Machine:     cfg.Machine,
		ControlAddr: controlAddr,
		BootEpoch:   time.Now().UnixNano(),
		Version:     cfg.Version,
	}
	ring, err := cluster.Create(rc)
	if err != nil {
		return nil, fmt.Errorf("join the gossip ring on %s:%d: %w", cfg.GossipBindAddr, cfg.GossipPort, err)
	}
	return ring, nil
}

// run feeds ring events to the detector and hands confirmed deaths to onGone, until ctx
// ends.
func (l *liveness) run(ctx context.Context, onGone func(death)) {
	states, unsubscribe := l.det.Subscribe()
	defer unsubscribe()
	var events <-chan cluster.Event
	if l.ring != nil {
		events = l.ring.Events()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case st, ok := <-states:
			if !ok {
				return
			}
			switch v := verdictOf(st); v {
			case proto.MemberDead, proto.MemberLeft:
				onGone(death{Daemon: st.Name, Verdict: v, Since: st.Since, Reason: st.Reason})
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			l.onRingEvent(ev)
		}
	}
}

func (l *liveness) onRingEvent(ev cluster.Event) {
	m := ev.Member
	if l.ring != nil && m.Name == l.ring.Name() {
		return
	}
	l.mu.Lock()
	l.seen[m.Name] = m
	l.mu.Unlock()
	switch ev.Type {
	case cluster.MemberJoin, cluster.MemberUpdate:
		if m.Meta.Leaving && l.det.State(m.Name).Verdict.Gone() {
			// The leave intent spreading after the daemon announced its leave over
			// its control link: not a rejoin.
			return
		}
		l.mu.Lock()
		epoch := l.epochs[m.Name]
		l.mu.Unlock()
		if l.det.State(m.Name).Verdict == failure.Left && epoch != 0 && m.Meta.BootEpoch == epoch {
			// Gossip that still has a process alive after it announced its leave (its
			// ring leave is late or failed): that process is not coming back, only a
			// new registration revives the name.
			return
		}
		l.det.GossipJoin(m.Name, m.Meta.ControlAddr)
	case cluster.MemberLeave:
		l.mu.Lock()
		epoch := l.epochs[m.Name]
		l.mu.Unlock()
		if epoch != 0 && m.Meta.BootEpoch != 0 && m.Meta.BootEpoch != epoch {
			// The death of a previous life of a daemon that has registered again since
			// (a restart, often on a new gossip port): not news about the running one.
			l.log.Info("gossip: previous process of a restarted daemon declared gone", "daemon", m.Name,
				"old_epoch", m.Meta.BootEpoch, "epoch", epoch)
			return
		}
		l.det.GossipGone(m.Name, m.Meta.Leaving)
	}
}

// ensureGossip makes the ring learn a registered daemon's current gossip address. A
// daemon restarted on a new gossip port shortly after its death is refused by memberlist
// ("conflicting address") until DeadNodeReclaimTime has passed since that death, and
// nothing would tell it again before the next push/pull (30 s on lan): so while the ring
// does not list the daemon at that address, join it there, once the reclaim time allows,
// a few times.
func (l *liveness) ensureGossip(info daemonInfo) {
	if l.ring == nil || info.GossipAddr == "" {
		return
	}
	l.mu.Lock()
	if l.joining[info.Name] == info.BootEpoch {
		l.mu.Unlock()
		return
	}
	l.joining[info.Name] = info.BootEpoch // a loop for an older life ends by itself
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() {
			l.mu.Lock()
			if l.joining[info.Name] == info.BootEpoch {
				delete(l.joining, info.Name)
			}
			l.mu.Unlock()
		}()
		wait := 500 * time.Millisecond // memberlist's own join usually lands first
		for attempt := 0; attempt < 5; attempt++ {
			t := time.NewTimer(wait)
			select {
			case <-l.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if m, ok := l.ring.Member(info.Name); ok && m.Addr == info.GossipAddr && m.Meta.BootEpoch == info.BootEpoch {
				return
			}
			l.mu.Lock()
			current := l.epochs[info.Name] == info.BootEpoch
			l.mu.Unlock()
			if !current {
				return // a newer registration took over
			}
			ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
			_, err := l.ring.Join(ctx, []string{info.GossipAddr})
			cancel()
			l.log.Debug("re-joined a registered daemon's gossip address", "daemon", info.Name, "addr", info.GossipAddr, "error", err)
			wait = l.reclaim + 500*time.Millisecond
		}
	}()
}

// registered tells the detector a daemon's link is up, with the control address to
// check when the link goes down. Without gossip the link is the only source of
// membership; with it, a registering daemon is alive whatever gossip last said.
func (l *liveness) registered(info daemonInfo) {
	l.mu.Lock()
	l.epochs[info.Name] = info.BootEpoch
	l.mu.Unlock()
	l.det.GossipJoin(info.Name, info.ControlAddr)
	l.det.LinkUp(info.Name)
	l.ensureGossip(info)
}

// restored tells the detector about a daemon known from the store that has no link yet
// (the coordinator restarted): its control port is checked at once, so a daemon that
// died meanwhile is confirmed dead, and one that is alive stays suspect until it
// re-registers.
func (l *liveness) restored(info daemonInfo) {
	l.det.GossipJoin(info.Name, info.ControlAddr)
	l.det.LinkDown(info.Name, errors.New("no link since the coordinator started"))
}

func (l *liveness) heard(name string) { l.det.Heard(name) }

func (l *liveness) linkDown(name string, err error) { l.det.LinkDown(name, err) }

// gossipAddr is the coordinator's gossip address ("" without gossip).
func (l *liveness) gossipAddr() string {
	if l.ring == nil {
		return ""
	}
	return l.ring.Addr()
}

// state is the detector's view of a member.
func (l *liveness) state(name string) (verdict string, since time.Time, reason string) {
	st := l.det.State(name)
	return verdictOf(st), st.Since, st.Reason
}

// verdict is the detector's verdict on a member (alive, suspect, dead, left).
func (l *liveness) verdict(name string) string {
	v, _, _ := l.state(name)
	return v
}

func verdictOf(st failure.State) string { return string(st.Verdict) }

// unreachableNote explains an operation on a daemon that got no answer over the
// daemon's control link (no link, or requests timing out) although the daemon is not
// confirmed dead: "alive via gossip, control link unreachable" when the gossip ring
// still lists it (e.g. indirect probes answer around a one-way partition), else the
// verdict. It is "" for a daemon confirmed dead or gone: their errors say so instead.
func (l *liveness) unreachableNote(name string) string {
	v, _, _ := l.state(name)
	switch v {
	case proto.MemberDead, proto.MemberLeft:
		return ""
	}
	if l.ring != nil {
		if _, ok := l.ring.Member(name); ok {
			return "alive via gossip, control link unreachable"
		}
	}
	if v == "" {
		v = proto.MemberSuspect
	}
	return fmt.Sprintf("not confirmed dead (%s), control link unreachable", v)
}

// shutdown leaves the ring gracefully (bounded by ctx) and stops the detector.
func (l *liveness) shutdown(ctx context.Context) {
	l.cancel()
	l.wg.Wait()
	if l.ring != nil {
		if err := l.ring.Leave(ctx); err != nil {
			l.log.Warn("leaving the gossip ring", "error", err)
		}
		if err := l.ring.Shutdown(); err != nil {
			l.log.Warn("gossip shutdown", "error", err)
		}
	}
	l.det.Close()
}

// death is a confirmed death (or graceful leave) of a daemon.
type death struct {
	Daemon  string
	Verdict string // dead | left
	Since   time.Time
	Reason  string
}

// describe is `daemon "D" confirmed dead since 12:00:01 (REASON)`.
func (d death) describe() string {
	if d.Verdict == proto.MemberLeft {
		return fmt.Sprintf("daemon %q left the cluster at %s", d.Daemon, d.Since.Format(time.TimeOnly))
	}
	s := fmt.Sprintf("daemon %q confirmed dead since %s", d.Daemon, d.Since.Format(time.TimeOnly))
	if d.Reason != "" {
		s += " (" + d.Reason + ")"
	}
	return s
}

// outcome is the outcome of a node lost with the daemon.
func (d death) outcome() string {
	if d.Verdict == proto.MemberLeft {
		return fmt.Sprintf("lost (daemon %s left at %s)", d.Daemon, d.Since.Format(time.TimeOnly))
	}
	if d.Reason == "" {
		return fmt.Sprintf("lost (daemon %s dead since %s)", d.Daemon, d.Since.Format(time.TimeOnly))
	}
	return fmt.Sprintf("lost (daemon %s dead since %s: %s)", d.Daemon, d.Since.Format(time.TimeOnly), d.Reason)
}

// daemonWatch is a pending operation that depends on one daemon: the detector fails it
// the moment the daemon is confirmed dead.
type daemonWatch struct {
	daemon string
	p      *failure.Pending
}

// watch registers a pending operation on daemon. If the daemon is already confirmed
// dead the operation is not registered and the death is returned.
func (l *liveness) watch(daemon, op string) (*daemonWatch, *death) {
	p, err := l.det.Pending().Add(daemon, op)
	if err != nil {
		d := l.deathFrom(daemon, err)
		return nil, &d
	}
	return &daemonWatch{daemon: daemon, p: p}, nil
}

func (l *liveness) deathFrom(daemon string, err error) death {
	var de *failure.DeathError
	if errors.As(err, &de) {
		return death{Daemon: daemon, Verdict: string(de.Verdict), Since: de.Since, Reason: de.Reason}
	}
	v, since, reason := l.state(daemon)
	if v != proto.MemberLeft {
		v = proto.MemberDead
	}
	if reason == "" {
		reason = err.Error()
	}
	return death{Daemon: daemon, Verdict: v, Since: since, Reason: reason}
}

// done is closed when the daemon is confirmed dead.
func (w *daemonWatch) done() <-chan struct{} { return w.p.Done() }

// death is the daemon's death once done is closed, else nil.
func (w *daemonWatch) death() *death {
	select {
	case <-w.p.Done():
	default:
		return nil
	}
	err := w.p.Err()
	if err == nil {
		return nil
	}
	d := death{Daemon: w.daemon, Verdict: proto.MemberDead, Since: time.Now(), Reason: err.Error()}
	var de *failure.DeathError
	if errors.As(err, &de) {
		d.Verdict, d.Since, d.Reason = string(de.Verdict), de.Since, de.Reason
	}
	return &d
}

// context derives a context cancelled when the daemon is confirmed dead.
func (w *daemonWatch) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-w.p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// close completes the pending operation.
func (w *daemonWatch) close() {
	if w != nil {
		w.p.Complete()
	}
}
