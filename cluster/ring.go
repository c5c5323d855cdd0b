package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// ErrShutdown is returned by operations on a Ring that was shut down.
var ErrShutdown = errors.New("gossip ring is shut down")

// fallbackWait bounds memberlist calls that would otherwise wait forever when
// the caller's context has no deadline.
const fallbackWait = 10 * time.Second

// seenMember is what the ring remembers of every member it has seen, for the
// rejoin loop.
type seenMember struct {
	addr   string
	goneAt time.Time // zero while alive
	left   bool      // gone with a leave intent: not re-joined
}

// Ring is this process's membership in the gossip ring.
type Ring struct {
	cfg       Config
	logger    hclog.Logger
	ml        *memberlist.Memberlist
	transport *countingTransport
	name      string
	addr      string

	// updateMu serialises metadata updates; it is held across calls into
	// memberlist, so delegates never take it.
	updateMu sync.Mutex

	// mu guards the fields below. It is taken by delegates while memberlist
	// holds its own locks, so it is never held while calling memberlist.
	mu        sync.Mutex
	meta      Meta
	metaBytes []byte
	members   map[string]Member     // alive members, as notified by memberlist
	seen      map[string]seenMember // every member ever seen
	leaving   map[string]bool       // members that sent a leave notice
	rtts      map[string]RTTSample
	seeds     []string

	evMu          sync.Mutex
	events        chan Event
	evClosed      bool
	eventsDropped atomic.Uint64
	lastDropLog   atomic.Int64
	rejoins       atomic.Uint64

	// lifeMu orders memberlist's Leave and Shutdown: Leave after Shutdown
	// panics in memberlist.
	lifeMu   sync.Mutex
	stopCh   chan struct{}
	stopOnce sync.Once
	stopErr  error
	wg       sync.WaitGroup
	left     atomic.Bool
}

// Create starts a ring member: it binds the gossip listeners and starts
// memberlist's background loops and the rejoin loop. It does not contact
// anyone; call Join.
func Create(cfg *Config) (*Ring, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	metaBytes, err := c.Meta.Encode()
	if err != nil {
		return nil, fmt.Errorf("create gossip ring member %q: %w", c.Name, err)
	}

	var inner memberlist.Transport
	if c.Transport != nil {
		inner = c.Transport
	} else {
		nt, err := newNetTransport(c.BindAddr, c.BindPort, c.Logger)
		if err != nil {
			return nil, fmt.Errorf("create gossip ring member %q: %w", c.Name, err)
		}
		inner = nt
	}
	tr := newCountingTransport(inner)
	fail := func(err error) (*Ring, error) {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("create gossip ring member %q: %w", c.Name, err)
	}

	boundPort := c.BindPort
	if p, ok := inner.(autoBindPorter); ok {
		boundPort = p.GetAutoBindPort()
	}
	advPort := c.AdvertisePort
	if advPort == 0 {
		advPort = boundPort
	}
	advIP, gotPort, err := tr.FinalAdvertiseAddr(c.AdvertiseAddr, advPort)
	if err != nil {
		return fail(fmt.Errorf("resolve advertise address (set AdvertiseAddr when binding to %s): %w", c.BindAddr, err))
	}
	if c.AdvertisePort != 0 {
		gotPort = c.AdvertisePort
	}
	if gotPort == 0 {
		gotPort = advPort
	}
	if gotPort == 0 {
		return fail(errors.New("the transport reports no bound port: set AdvertisePort"))
	}

	r := &Ring{
		cfg:       c,
		logger:    c.Logger,
		transport: tr,
		name:      c.Name,
		addr:      net.JoinHostPort(advIP.String(), strconv.Itoa(gotPort)),
		meta:      c.Meta.clone(),
		metaBytes: metaBytes,
		members:   make(map[string]Member),
		seen:      make(map[string]seenMember),
		leaving:   make(map[string]bool),
		rtts:      make(map[string]RTTSample),
		events:    make(chan Event, c.EventBuffer),
		stopCh:    make(chan struct{}),
	}

	mlc := memberlist.DefaultLANConfig()
	c.Profile.Apply(mlc)
	mlc.Name = c.Name
	mlc.BindAddr = c.BindAddr
	mlc.BindPort = boundPort
	mlc.AdvertiseAddr = advIP.String()
	mlc.AdvertisePort = gotPort
	mlc.Transport = tr
	mlc.Delegate = delegate{r}
	mlc.Events = eventDelegate{r}
	mlc.Ping = pingDelegate{r}
	mlc.Logger = c.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	if len(c.SecretKey) > 0 {
		mlc.SecretKey = slices.Clone(c.SecretKey)
	}

	ml, err := memberlist.Create(mlc)
	if err != nil {
		return fail(err)
	}
	r.ml = ml
	r.logger.Info("gossip ring member started", "member", r.name, "addr", r.addr,
		"profile", c.Profile.Name, "encrypted", len(c.SecretKey) > 0)

	if c.RejoinInterval > 0 {
		r.wg.Add(1)
		go r.rejoinLoop(c.RejoinInterval)
	}
	return r, nil
}

// newNetTransport binds memberlist's NetTransport. A port of 0 is retried,
// since binding UDP and TCP to the same kernel-picked port can race.
func newNetTransport(bindAddr string, bindPort int, logger hclog.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{bindAddr},
		BindPort:  bindPort,
		Logger:    logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	tries := 1
	if bindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("bind gossip transport on %s port %d: %w", bindAddr, bindPort, err)
}

// Join contacts the seeds (host:port gossip addresses) and merges state with
// them. It returns how many seeds answered; it is an error if none did. The
// seeds are remembered and re-joined by the rejoin loop while no alive member
// has that exact address, so give seeds as ip:port. If ctx ends first, Join
// returns its error while the attempt finishes in the background (bounded by
// the profile's TCPTimeout per seed).
func (r *Ring) Join(ctx context.Context, seeds []string) (int, error) {
	if r.stopped() {
		return 0, ErrShutdown
	}
	if len(seeds) == 0 {
		return 0, errors.New("join gossip ring: no seed addresses given")
	}
	r.addSeeds(seeds)
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := r.ml.Join(seeds)
		ch <- result{n, err}
	}()
	select {
	case res := <-ch:
		if res.n > 0 {
			r.logger.Info("joined gossip ring", "member", r.name, "seeds", seeds, "answered", res.n)
			return res.n, nil
		}
		err := r.joinError(seeds, res.err)
		r.logger.Error("could not join gossip ring", "member", r.name, "error", err)
		return 0, err
	case <-ctx.Done():
		return 0, fmt.Errorf("join gossip ring via %s: %w", strings.Join(seeds, ", "), ctx.Err())
	case <-r.stopCh:
		return 0, ErrShutdown
	}
}

// joinError explains a failed join. A key mismatch shows up on the joining
// side only as a closed stream or a failed decryption, so say so.
func (r *Ring) joinError(seeds []string, err error) error {
	if err == nil {
		err = errors.New("no seed answered")
	}
	// memberlist returns a multierror whose text spans several lines.
	if me, ok := err.(interface{ WrappedErrors() []error }); ok {
		if errs := me.WrappedErrors(); len(errs) > 0 {
			err = flatErrors(errs)
		}
	}
	msg := err.Error()
	hint := ""
	switch {
	case strings.Contains(msg, "decrypt") || strings.Contains(msg, "encrypt") ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset"):
		if len(r.cfg.SecretKey) > 0 {
			hint = " (the seeds closed the connection or could not be decrypted: is this member's secret key the cluster key?)"
		} else {
			hint = " (the seeds closed the connection or sent encrypted data: the cluster may require a secret key)"
		}
	case strings.Contains(msg, "connection refused"):
		hint = " (nothing listens at the seed address: is the seed running and the address right?)"
	case strings.Contains(msg, "i/o timeout"):
		hint = " (no answer: the seed is down or unreachable)"
	}
	return fmt.Errorf("join gossip ring via %s: no seed answered%s: %w", strings.Join(seeds, ", "), hint, err)
}

// flatErrors is a one-line errors.Join.
type flatErrors []error

func (e flatErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e flatErrors) Unwrap() []error { return e }

func (r *Ring) addSeeds(seeds []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range seeds {
		if s != "" && !slices.Contains(r.seeds, s) {
			r.seeds = append(r.seeds, s)
		}
	}
}

// Events returns the channel of membership changes. It is closed by
// Shutdown. Events are never allowed to block memberlist: when the buffer is
// full they are dropped (see Stats.EventsDropped), so a consumer that fell
// behind must resynchronise with Members.
func (r *Ring) Events() <-chan Event { return r.events }

// Members returns the members memberlist considers alive (including suspects
// and this member), sorted by name. The list is kept from memberlist's own
// notifications, under its lock, so it matches memberlist.Members().
func (r *Ring) Members() []Member {
	r.mu.Lock()
	out := make([]Member, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, m.cloneMember())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Member returns the alive member with the given name.
func (r *Ring) Member(name string) (Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[name]
	return m.cloneMember(), ok
}

// LocalMember returns this member with its current metadata.
func (r *Ring) LocalMember() Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Member{Name: r.name, Addr: r.addr, Meta: r.meta.clone()}
}

// Addr returns the advertised gossip address, host:port.
func (r *Ring) Addr() string { return r.addr }

// Name returns this member's name.
func (r *Ring) Name() string { return r.name }

// UpdateMeta replaces this member's metadata and gossips it. It returns once
// the update has been broadcast, or with an error when ctx is done (the new
// metadata is applied locally and keeps spreading either way).
func (r *Ring) UpdateMeta(ctx context.Context, m Meta) error {
	if r.stopped() {
		return ErrShutdown
	}
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("update metadata of %q: %w", r.name, err)
	}
	r.updateMu.Lock()
	defer r.updateMu.Unlock()
	r.mu.Lock()
	r.meta = m.clone()
	r.metaBytes = b
	r.mu.Unlock()
	timeout := budget(ctx, fallbackWait)
	err = callWithContext(ctx, r.stopCh, func() error { return r.ml.UpdateNode(timeout) })
	if err != nil {
		return fmt.Errorf("update metadata of %q: %w", r.name, err)
	}
	return nil
}

// Ping sends a direct UDP ping to a member (alive, or gone but seen before)
// and returns the round-trip time. It fails after the profile's ProbeTimeout
// or when ctx is done, whichever comes first. Successful pings are recorded
// as RTT samples.
func (r *Ring) Ping(ctx context.Context, name string) (time.Duration, error) {
	if r.stopped() {
		return 0, ErrShutdown
	}
	r.mu.Lock()
	addr := ""
	if m, ok := r.members[name]; ok {
		addr = m.Addr
	} else if s, ok := r.seen[name]; ok {
		addr = s.addr
	}
	r.mu.Unlock()
	if addr == "" {
		return 0, fmt.Errorf("ping %q: not a known member", name)
	}
	udp, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return 0, fmt.Errorf("ping %q: resolve %s: %w", name, addr, err)
	}
	var rtt time.Duration
	err = callWithContext(ctx, r.stopCh, func() error {
		start := time.Now()
		d, err := r.ml.Ping(name, udp)
		if err == nil && d <= 0 {
			// memberlist.Ping takes its send time after the write, so
			// on loopback the ack can be stamped earlier: a negative
			// RTT. Fall back to the elapsed time around the call.
			d = time.Since(start)
		}
		rtt = d
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ping %q at %s: %w", name, addr, err)
	}
	r.recordRTT(name, rtt)
	return rtt, nil
}

// RTT returns the last round-trip time measured to a member by memberlist's
// probes or by Ping.
func (r *Ring) RTT(name string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.rtts[name]
	return s.RTT, ok
}

// RTTs returns the last RTT sample of every member measured so far.
func (r *Ring) RTTs() map[string]RTTSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]RTTSample, len(r.rtts))
	for k, v := range r.rtts {
		out[k] = v
	}
	return out
}

// HealthScore returns memberlist's Lifeguard local health score: 0 is
// healthy, higher means this member itself is struggling (missed acks,
// refutations) and probes more slowly.
func (r *Ring) HealthScore() int { return r.ml.GetHealthScore() }

// NumMembers returns the number of alive members, this one included.
func (r *Ring) NumMembers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}

// Leave leaves the ring gracefully and shuts the member down: it sets
// Meta.Leaving and gossips it, sends a direct leave notice to every member,
// broadcasts memberlist's leave, then stops. ctx bounds the whole sequence;
// the member is shut down even when a step fails.
func (r *Ring) Leave(ctx context.Context) error {
	if r.stopped() {
		return ErrShutdown
	}
	var errs []error
	total := budget(ctx, fallbackWait)
	start := time.Now()

	// 1. Leave intent in the metadata, with at most half the budget.
	m := r.LocalMember().Meta
	m.Leaving = true
	uctx, cancel := context.WithTimeout(ctx, total/2)
	if err := r.UpdateMeta(uctx, m); err != nil {
		errs = append(errs, fmt.Errorf("announce leave intent: %w", err))
	}
	cancel()

	// 2. Direct notices, for peers that missed the update.
	nctx, cancel := context.WithTimeout(ctx, (total-time.Since(start))/2)
	r.sendLeaveNotices(nctx)
	cancel()

	// 3. memberlist's leave broadcast.
	r.left.Store(true)
	remaining := max(total-time.Since(start), time.Millisecond)
	leave := func() error {
		r.lifeMu.Lock()
		defer r.lifeMu.Unlock()
		select {
		case <-r.stopCh:
			return ErrShutdown
		default:
		}
		return r.ml.Leave(remaining)
	}
	if err := callWithContext(ctx, r.stopCh, leave); err != nil {
		errs = append(errs, fmt.Errorf("broadcast leave: %w", err))
	}
	r.logger.Info("left gossip ring", "member", r.name, "took", time.Since(start).Round(time.Millisecond))

	// 4. Stop.
	if err := r.Shutdown(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leave gossip ring as %q: %w", r.name, err)
	}
	return nil
}

// sendLeaveNotices sends the direct leave notice to every other alive member
// in parallel, best effort, until ctx is done.
func (r *Ring) sendLeaveNotices(ctx context.Context) {
	msg, err := encodeLeavingNotice(r.name)
	if err != nil {
		r.logger.Warn("cannot encode leave notice", "error", err)
		return
	}
	var targets []*memberlist.Node
	for _, m := range r.Members() {
		if m.Name == r.name {
			continue
		}
		host, portStr, err := net.SplitHostPort(m.Addr)
		if err != nil {
			continue
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			continue
		}
		targets = append(targets, &memberlist.Node{Name: m.Name, Addr: net.ParseIP(host), Port: uint16(port)})
	}
	if len(targets) == 0 {
		return
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.ml.SendReliable(n, msg); err != nil {
				r.logger.Debug("leave notice not delivered", "member", n.Name, "error", err)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// onLeavingNotice records a peer's direct leave notice.
func (r *Ring) onLeavingNotice(name string) {
	now := time.Now()
	r.mu.Lock()
	r.leaving[name] = true
	m, ok := r.members[name]
	if ok {
		m.Meta.Leaving = true
		r.members[name] = m
	}
	r.mu.Unlock()
	if ok {
		r.logger.Debug("member announced leave", "member", name)
		r.push(Event{Type: MemberUpdate, Member: m.cloneMember(), Time: now})
	}
}

// Shutdown stops the member without telling anyone: peers will detect it as
// dead. It stops the rejoin loop and closes Events. It is idempotent.
func (r *Ring) Shutdown() error {
	r.stopOnce.Do(func() {
		close(r.stopCh)
		r.lifeMu.Lock()
		if err := r.ml.Shutdown(); err != nil {
			r.stopErr = fmt.Errorf("shut down gossip ring member %q: %w", r.name, err)
		}
		r.lifeMu.Unlock()
		r.wg.Wait()
		r.closeEvents()
		r.logger.Debug("gossip ring member stopped", "member", r.name)
	})
	return r.stopErr
}

func (r *Ring) stopped() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return r.left.Load()
	}
}

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	var s Stats
	r.transport.snapshot(&s)
	s.EventsDropped = r.eventsDropped.Load()
	s.Rejoins = r.rejoins.Load()
	return s
}

// budget returns how long a blocking memberlist call may take: the time left
// before ctx's deadline, or fallback without one. It is always positive
// because memberlist treats a zero timeout as "wait forever".
func budget(ctx context.Context, fallback time.Duration) time.Duration {
	d := fallback
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return max(d, time.Millisecond)
}

// callWithContext runs f, which is bounded by its own timeout, and returns
// its error, or ctx's error if ctx is done first, or ErrShutdown if stop is
// closed first. f keeps running to its own timeout in that case.
func callWithContext(ctx context.Context, stop <-chan struct{}, f func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrShutdown
	}
}
