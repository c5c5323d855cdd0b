package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doractl/doractl/cluster"
)

// ipCounter hands out distinct loopback IPs (127.42.x.y), one per member, so that a
// FaultTransport can attribute incoming streams to a peer and conditions running at the
// same time never share an address.
var ipCounter atomic.Uint32

func nextIP() string {
	i := ipCounter.Add(1)
	return fmt.Sprintf("127.42.%d.%d", i/250, i%250+1)
}

// death is a dead verdict (MemberLeave without leave intent) as one member saw it.
type death struct {
	observer string
	member   string
	at       time.Time
}

// member is one ring member of a bench ring.
type member struct {
	name string
	ring *cluster.Ring
	ft   *cluster.FaultTransport // nil in the load phase
	vo   *verdicts               // the coordinator's doractl verdicts (verdict rings)
	link *daemonLink             // a daemon's control link (verdict rings)
}

// stall freezes the member: its transport and its control link.
func (m *member) stall(d time.Duration) {
	m.ft.Stall(d)
	if m.link != nil {
		m.link.self.stall(d)
	}
}

// swimRing is a ring of in-process members; members[0] is the coordinator, the observer.
type swimRing struct {
	label   string
	profile cluster.Profile
	fault   bool
	verdict bool // also run the coordinator's failure.Detector over control links

	vo *verdicts // set with the coordinator, before any daemon

	mu      sync.Mutex
	members []*member
	deaths  []death
	seq     int
	wg      sync.WaitGroup
}

func newSwimRing(label, profile string, fault bool) (*swimRing, error) {
	p, err := cluster.ProfileByName(profile)
	if err != nil {
		return nil, err
	}
	return &swimRing{label: label, profile: p, fault: fault}, nil
}

// newVerdictRing is a fault ring whose coordinator also gives doractl verdicts.
func newVerdictRing(label, profile string) (*swimRing, error) {
	s, err := newSwimRing(label, profile, true)
	if s != nil {
		s.verdict = true
	}
	return s, err
}

func (s *swimRing) coordinator() *member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[0]
}

// add creates a member on a fresh loopback IP and joins it to the coordinator.
func (s *swimRing) add(ctx context.Context) (*member, error) {
	s.mu.Lock()
	role := cluster.RoleDaemon
	name := fmt.Sprintf("%s-d%d", s.label, s.seq)
	if s.seq == 0 {
		role, name = cluster.RoleCoordinator, s.label+"-coordinator"
	}
	s.seq++
	var seed string
	if len(s.members) > 0 {
		seed = s.members[0].ring.Addr()
	}
	vo := s.vo
	s.mu.Unlock()

	cfg := cluster.DefaultConfig()
	cfg.Name = name
	cfg.Profile = s.profile
	cfg.Meta = cluster.Meta{Role: role, Machine: name, BootEpoch: time.Now().UnixNano(), Version: "bench"}
	ip := nextIP()
	m := &member{name: name}
	if s.fault {
		ft, err := cluster.NewFaultTransport(ip, 0, nil)
		if err != nil {
			return nil, err
		}
		cfg.Transport = ft
		m.ft = ft
		if s.verdict && role == cluster.RoleDaemon {
			if vo == nil {
				_ = ft.Shutdown()
				return nil, errors.New("verdict ring: daemon before coordinator")
			}
			if m.link, err = vo.attach(name, ip, ft); err != nil {
				_ = ft.Shutdown()
				return nil, err
			}
			cfg.Meta.ControlAddr = m.link.ctlAddr
		}
	} else {
		cfg.BindAddr = ip
		cfg.BindPort = 0
	}
	r, err := cluster.Create(cfg)
	if err != nil {
		if m.link != nil {
			m.link.close()
		}
		if m.ft != nil {
			_ = m.ft.Shutdown()
		}
		return nil, err
	}
	m.ring = r
	if s.verdict && role == cluster.RoleCoordinator {
		if m.vo, err = newVerdicts(ip, m.ft, r, s.profile); err != nil {
			_ = r.Shutdown()
			return nil, err
		}
		s.mu.Lock()
		s.vo = m.vo
		s.mu.Unlock()
	}
	s.wg.Add(1)
	go s.watch(m)
	if seed != "" {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := r.Join(jctx, []string{seed})
		cancel()
		if err != nil {
			m.close()
			return nil, err
		}
	}
	s.mu.Lock()
	s.members = append(s.members, m)
	s.mu.Unlock()
	return m, nil
}

// watch records every dead verdict a member observes, until its ring shuts down.
func (s *swimRing) watch(m *member) {
	defer s.wg.Done()
	for ev := range m.ring.Events() {
		if m.vo != nil {
			m.vo.onEvent(ev)
		}
		if ev.Type != cluster.MemberLeave || ev.Member.Meta.Leaving {
			continue
		}
		s.mu.Lock()
		s.deaths = append(s.deaths, death{observer: m.name, member: ev.Member.Name, at: ev.Time})
		s.mu.Unlock()
	}
}

// remove shuts a member down (no leave) and forgets it.
func (s *swimRing) remove(m *member) {
	m.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.members {
		if x == m {
			s.members = append(s.members[:i], s.members[i+1:]...)
			break
		}
	}
}

// grow adds members until there are n.
func (s *swimRing) grow(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		have := len(s.members)
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		if _, err := s.add(ctx); err != nil {
			return err
		}
	}
}

// converge waits until every member sees exactly the current members alive.
func (s *swimRing) converge(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		ms := append([]*member(nil), s.members...)
		s.mu.Unlock()
		ok := true
		for _, m := range ms {
			if m.ring.NumMembers() != len(ms) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: ring of %d did not converge within %s", s.label, len(ms), within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// daemons returns the non-coordinator members.
func (s *swimRing) daemons() []*member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*member(nil), s.members[1:]...)
}

// deathsSeen returns the dead verdicts observed in [from, to]; observer "" means any.
func (s *swimRing) deathsSeen(observer, name string, from, to time.Time) []death {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []death
	for _, d := range s.deaths {
		if (observer == "" || d.observer == observer) && (name == "" || d.member == name) &&
			!d.at.Before(from) && !d.at.After(to) {
			out = append(out, d)
		}
	}
	return out
}

// waitDeath waits for the coordinator's dead verdict on name at or after since.
func (s *swimRing) waitDeath(ctx context.Context, name string, since time.Time, within time.Duration) (time.Time, error) {
	coord := s.coordinator().name
	deadline := time.Now().Add(within)
	for {
		if ds := s.deathsSeen(coord, name, since, time.Now().Add(time.Hour)); len(ds) > 0 {
			return ds[0].at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, errors.New("not declared dead in time")
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *swimRing) close() {
	s.mu.Lock()
	ms := append([]*member(nil), s.members...)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); m.close() }()
	}
	wg.Wait()
	s.wg.Wait()
}

// close shuts the member down (no leave): its ring, its control link or its detector.
func (m *member) close() {
	_ = m.ring.Shutdown()
	if m.link != nil {
		m.link.close()
	}
	if m.vo != nil {
		m.vo.close()
	}
}

// crashResult is one (detector, profile, N) of the crash-latency table.
type crashResult struct {
	detector  string // "SWIM", detVerdict or "heartbeat"
	fault     string // faultVanish or faultKill ("either" for the heartbeat)
	profile   string
	n         int
	trials    int
	latencies []time.Duration // detected trials
	err       string
}

// Crash faults.
const (
	// faultVanish is a member that neither sends nor answers, its port included: a host
	// that lost power or left radio range, or a frozen host.
	faultVanish = "host vanishes"
	// faultKill is kill -9 of the daemon process: the kernel closes its sockets, so its
	// control link ends and its port refuses connections, while gossip only sees silence.
	faultKill = "kill -9"
)

// runSwimCrash measures the time from a daemon's crash to the coordinator's dead verdict,
// `trials` times per fault: memberlist's (the raw SWIM row) and doractl's (the "doractl
// verdict" row: the detector's confirmed death). Both faults stall the victim's
// FaultTransport endlessly (gossip sees silence); a vanished host also drops everything
// and its control link freezes and its port stops answering, a killed process's link
// closes and its port refuses.
// After each trial the victim is shut down and replaced by a fresh member, so the ring
// stays at n.
func runSwimCrash(ctx context.Context, profile string, n, trials int) []*crashResult {
	res := &crashResult{detector: "SWIM", fault: faultVanish, profile: profile, n: n, trials: trials}
	ver := &crashResult{detector: detVerdict, fault: faultVanish, profile: profile, n: n, trials: trials}
	kill := &crashResult{detector: detVerdict, fault: faultKill, profile: profile, n: n, trials: trials}
	out := []*crashResult{res, ver, kill}
	fail := func(err string) []*crashResult {
		res.err, ver.err, kill.err = err, err, err
		return out
	}
	s, err := newVerdictRing(fmt.Sprintf("crash-%s-%d", profile, n), profile)
	if err != nil {
		return fail(err.Error())
	}
	defer s.close()
	within := time.Minute
	if profile == cluster.ProfileWAN {
		within = 3 * time.Minute
	}
	if err := s.grow(ctx, n); err == nil {
		err = s.converge(ctx, within)
	}
	if err != nil {
		return fail(err.Error())
	}
	for t := range 2 * trials {
		killed := t >= trials
		// A random phase against the probe schedule.
		sleepCtx(ctx, s.profile.ProbeInterval+rand.N(s.profile.ProbeInterval))
		ds := s.daemons()
		victim := ds[rand.N(len(ds))]
		t0 := time.Now()
		victim.stall(time.Hour)
		if killed {
			victim.link.close() // its socket closes, its port refuses
		} else {
			victim.ft.SetDropRate(1)
			victim.link.self.vanished.Store(true)
		}
		if killed {
			if at, err := s.waitVerdict(ctx, victim.name, t0, within); err != nil {
				kill.err = fmt.Sprintf("trial %d: %v", t-trials+1, err)
			} else {
				kill.latencies = append(kill.latencies, at.Sub(t0))
			}
		} else {
			at, err := s.waitDeath(ctx, victim.name, t0, within)
			if err != nil {
				res.err = fmt.Sprintf("trial %d: %v", t+1, err)
			} else {
				res.latencies = append(res.latencies, at.Sub(t0))
			}
			if at, err := s.waitVerdict(ctx, victim.name, t0, within); err != nil {
				ver.err = fmt.Sprintf("trial %d: %v", t+1, err)
			} else {
				ver.latencies = append(ver.latencies, at.Sub(t0))
			}
		}
		s.remove(victim)
		if t == 2*trials-1 {
			break
		}
		if _, err := s.add(ctx); err != nil {
			return fail(fmt.Sprintf("replace after trial %d: %v", t+1, err))
		}
		if err := s.converge(ctx, within); err != nil {
			return fail(err.Error())
		}
	}
	return out
}

// detVerdict is the detector name of the doractl-verdict rows.
const detVerdict = "doractl verdict"

// waitVerdict waits for the coordinator detector's dead verdict on name at or after since.
func (s *swimRing) waitVerdict(ctx context.Context, name string, since time.Time, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		if ds := s.vo.deathsSeen(name, since, time.Now().Add(time.Hour)); len(ds) > 0 {
			return ds[0].at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, errors.New("not confirmed dead in time")
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lossResult is one row of the false-deaths-under-loss table.
type lossResult struct {
	detector  string
	profile   string // for the baseline: "real time" or "×10 time"
	n         int
	loss      float64
	duration  time.Duration // wall time of the condition
	simulated time.Duration // detector time it covers (≠ duration for the compressed baseline)
	atCoord   int           // dead verdicts at the coordinator (observer)
	atAny     int           // dead verdicts at any member (SWIM only)
	verdict   int           // doractl's dead verdicts at the coordinator (SWIM only, else -1)
	err       string
}

// runSwimLoss sets the same drop rate on every member's transport (UDP and TCP) and counts
// dead verdicts for d.
func runSwimLoss(ctx context.Context, profile string, n int, loss float64, d time.Duration) *lossResult {
	res := &lossResult{detector: "SWIM", profile: profile, n: n, loss: loss}
	s, err := newVerdictRing(fmt.Sprintf("loss-%s-%02.0f", profile, loss*100), profile)
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer s.close()
	if err := s.grow(ctx, n); err == nil {
		err = s.converge(ctx, time.Minute)
	}
	if err != nil {
		res.err = err.Error()
		return res
	}
	s.mu.Lock()
	ms := append([]*member(nil), s.members...)
	s.mu.Unlock()
	for _, m := range ms {
		m.ft.SetDropRate(loss)
	}
	from := time.Now()
	sleepCtx(ctx, d)
	to := time.Now()
	res.duration, res.simulated = to.Sub(from), to.Sub(from)
	res.atCoord = len(s.deathsSeen(ms[0].name, "", from, to))
	res.atAny = len(s.deathsSeen("", "", from, to))
	res.verdict = len(s.vo.deathsSeen("", from, to))
	for _, m := range ms {
		m.ft.Heal()
	}
	return res
}

// stallResult is one row of the stall table.
type stallResult struct {
	detector string
	profile  string
	n        int
	stall    time.Duration
	stalls   int
	killed   int             // stalls after which the coordinator declared the member dead
	firstAt  []time.Duration // stall start -> dead verdict, for killed stalls
	// doractl's verdicts (SWIM only; verdictKilled -1 otherwise)
	verdictKilled int
	verdictAt     []time.Duration
	duration      time.Duration
	err           string
}

// runSwimStall stalls one daemon (rotating) `stalls` times for d and checks whether the
// coordinator declares it dead within the stall plus recover.
func runSwimStall(ctx context.Context, profile string, n int, d time.Duration, stalls int, recover time.Duration) *stallResult {
	res := &stallResult{detector: "SWIM", profile: profile, n: n, stall: d, stalls: stalls}
	s, err := newVerdictRing(fmt.Sprintf("stall-%s-%d", profile, int(d.Seconds())), profile)
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer s.close()
	if err := s.grow(ctx, n); err == nil {
		err = s.converge(ctx, time.Minute)
	}
	if err != nil {
		res.err = err.Error()
		return res
	}
	coord := s.coordinator().name
	start := time.Now()
	for i := range stalls {
		ds := s.daemons()
		victim := ds[i%len(ds)]
		t0 := time.Now()
		victim.stall(d)
		sleepCtx(ctx, d+recover)
		if got := s.deathsSeen(coord, victim.name, t0, time.Now()); len(got) > 0 {
			res.killed++
			res.firstAt = append(res.firstAt, got[0].at.Sub(t0))
		}
		if got := s.vo.deathsSeen(victim.name, t0, time.Now()); len(got) > 0 {
			res.verdictKilled++
			res.verdictAt = append(res.verdictAt, got[0].at.Sub(t0))
		}
	}
	res.duration = time.Since(start)
	return res
}

// loadResult is one row of the gossip-load table.
type loadResult struct {
	n                  int
	window             time.Duration
	sentPerMember      float64 // packets + streams sent per second per member, mean
	sentMax            float64
	recvPerMember      float64
	bytesPerMember     float64 // bytes sent per second per member, mean
	packetsPerMember   float64
	streamsPerMember   float64
	convergeTime       time.Duration
	eventsDroppedTotal uint64
	err                string
}

// runLoad starts n members (lan profile, plain transports on distinct loopback IPs), waits
// until every member sees all n, lets the joins settle, and counts traffic over window.
func runLoad(ctx context.Context, n int, window time.Duration) *loadResult {
	res := &loadResult{n: n, window: window}
	s, err := newSwimRing(fmt.Sprintf("load-%d", n), cluster.ProfileLAN, false)
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer s.close()
	t0 := time.Now()
	if err := s.grow(ctx, n); err == nil {
		err = s.converge(ctx, 2*time.Minute)
	}
	if err != nil {
		res.err = err.Error()
		return res
	}
	res.convergeTime = time.Since(t0)
	// Let the join broadcasts die out.
	sleepCtx(ctx, 10*time.Second)
	s.mu.Lock()
	ms := append([]*member(nil), s.members...)
	s.mu.Unlock()
	before := make([]cluster.Stats, len(ms))
	for i, m := range ms {
		before[i] = m.ring.Stats()
	}
	w0 := time.Now()
	sleepCtx(ctx, window)
	secs := time.Since(w0).Seconds()
	var sent, recv, bytes, pk, st float64
	for i, m := range ms {
		a := m.ring.Stats()
		ds := float64(a.MessagesSent()-before[i].MessagesSent()) / secs
		sent += ds
		res.sentMax = max(res.sentMax, ds)
		recv += float64(a.MessagesReceived()-before[i].MessagesReceived()) / secs
		bytes += float64(a.BytesSent()-before[i].BytesSent()) / secs
		pk += float64(a.PacketsSent-before[i].PacketsSent) / secs
		st += float64(a.StreamsOpened-before[i].StreamsOpened) / secs
		res.eventsDroppedTotal += a.EventsDropped
	}
	k := float64(len(ms))
	res.sentPerMember, res.recvPerMember, res.bytesPerMember = sent/k, recv/k, bytes/k
	res.packetsPerMember, res.streamsPerMember = pk/k, st/k
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
