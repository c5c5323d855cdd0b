package cluster

import (
	"context"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func localProfile(t *testing.T) Profile {
	t.Helper()
	p, err := ProfileByName(ProfileLocal)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestRing starts a member on 127.0.0.1 with a free port and the local
// profile. It is shut down at the end of the test.
func newTestRing(t *testing.T, name string, opts ...func(*Config)) *Ring {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.Profile = localProfile(t)
	cfg.RejoinInterval = 500 * time.Millisecond
	cfg.Logger = testutil.Logger(name)
	cfg.Meta = Meta{
		Role:        RoleDaemon,
		Machine:     "machine-" + name,
		ControlAddr: "127.0.0.1:53290",
		BootEpoch:   time.Now().UnixNano(),
		Version:     "test",
		Labels:      map[string]string{"name": name},
	}
	for _, o := range opts {
		o(cfg)
	}
	r, err := Create(cfg)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() { _ = r.Shutdown() })
	return r
}

func join(t *testing.T, r *Ring, seeds ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Join(ctx, seeds); err != nil {
		t.Fatalf("%s joins %v: %v", r.Name(), seeds, err)
	}
}

// eventLog collects a ring's events until its Events channel closes.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func collect(r *Ring) *eventLog {
	l := &eventLog{}
	go func() {
		for ev := range r.Events() {
			l.mu.Lock()
			l.evs = append(l.evs, ev)
			l.mu.Unlock()
		}
	}()
	return l
}

// index returns the index of the first event matching f, or -1.
func (l *eventLog) index(f func(Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.IndexFunc(l.evs, f)
}

func (l *eventLog) get(i int) Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evs[i]
}

func isEvent(typ EventType, name string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == typ && ev.Member.Name == name }
}

func memberNames(r *Ring) []string {
	var out []string
	for _, m := range r.Members() {
		out = append(out, m.Name)
	}
	return out
}

func expectMembers(r *Ring, want ...string) error {
	slices.Sort(want)
	if got := memberNames(r); !slices.Equal(got, want) {
		return fmt.Errorf("%s sees %v, want %v", r.Name(), got, want)
	}
	return nil
}

func threeMembers(t *testing.T, opts ...func(*Config)) (a, b, c *Ring) {
	t.Helper()
	a = newTestRing(t, "a", opts...)
	b = newTestRing(t, "b", opts...)
	c = newTestRing(t, "c", opts...)
	join(t, b, a.Addr())
	join(t, c, a.Addr())
	for _, r := range []*Ring{a, b, c} {
		testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return expectMembers(r, "a", "b", "c") })
	}
	return a, b, c
}

func TestThreeMembersSeeEachOther(t *testing.T) {
	t.Parallel()
	a := newTestRing(t, "a")
	b := newTestRing(t, "b")
	// c never reads its events: they overflow its one-slot buffer, and
	// Members must still be right.
	c := newTestRing(t, "c", func(c *Config) { c.EventBuffer = 1 })
	if strings.HasSuffix(a.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the bound port", a.Addr())
	}
	evA := collect(a)
	join(t, b, a.Addr())
	join(t, c, b.Addr())

	for _, r := range []*Ring{a, b, c} {
		testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if err := expectMembers(r, "a", "b", "c"); err != nil {
				return err
			}
			for _, m := range r.Members() {
				want := Meta{Role: RoleDaemon, Machine: "machine-" + m.Name, ControlAddr: "127.0.0.1:53290", Version: "test"}
				if m.Meta.Role != want.Role || m.Meta.Machine != want.Machine || m.Meta.ControlAddr != want.ControlAddr ||
					m.Meta.Version != want.Version || m.Meta.Labels["name"] != m.Name || m.Meta.BootEpoch == 0 {
					return fmt.Errorf("%s sees %s with meta %+v", r.Name(), m.Name, m.Meta)
				}
				if m.Addr == "" {
					return fmt.Errorf("%s sees %s without address", r.Name(), m.Name)
				}
			}
			return nil
		})
	}
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		for _, n := range []string{"b", "c"} {
			if evA.index(isEvent(MemberJoin, n)) < 0 {
				return fmt.Errorf("a got no join event for %s", n)
			}
		}
		return nil
	})
	if i := evA.index(isEvent(MemberJoin, "c")); evA.get(i).Member.Meta.Machine != "machine-c" {
		t.Errorf("join event meta = %+v", evA.get(i).Member.Meta)
	}
	if got := a.LocalMember(); got.Name != "a" || got.Addr != a.Addr() || got.Meta.Machine != "machine-a" {
		t.Errorf("LocalMember() = %+v", got)
	}

	if s := c.Stats(); s.EventsDropped == 0 {
		t.Errorf("c's one-slot event buffer dropped nothing: %+v", s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rtt, err := a.Ping(ctx, "c")
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping(c) = %v, %v", rtt, err)
	}
	if got, ok := a.RTT("c"); !ok || got <= 0 {
		t.Errorf("RTT(c) = %v, %v after a ping", got, ok)
	}
	if s := a.Stats(); s.PacketsSent == 0 || s.PacketsReceived == 0 || s.StreamsAccepted == 0 || s.BytesReceived() == 0 {
		t.Errorf("a's transport counters look empty: %+v", s)
	}
	if _, err := a.Ping(ctx, "nobody"); err == nil {
		t.Error("Ping of an unknown member succeeded")
	}
	// memberlist's own probes feed the PingDelegate.
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if _, ok := b.RTT("a"); !ok {
			if _, ok := b.RTT("c"); !ok {
				return errors.New("b has no probe RTT yet")
			}
		}
		return nil
	})
	if h := a.HealthScore(); h < 0 {
		t.Errorf("HealthScore() = %d", h)
	}

	// Metadata updates reach the others as MemberUpdate.
	m := a.LocalMember().Meta
	m.Labels = map[string]string{"name": "a", "zone": "lab"}
	uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ucancel()
	if err := a.UpdateMeta(uctx, m); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		got, ok := b.Member("a")
		if !ok || got.Meta.Labels["zone"] != "lab" {
			return fmt.Errorf("b sees a as %+v", got)
		}
		return nil
	})
}

func TestMetaLimit(t *testing.T) {
	t.Parallel()
	m := Meta{Role: RoleCoordinator, Machine: "m", ControlAddr: "10.0.0.1:6012", BootEpoch: 42, Version: "v1",
		Labels: map[string]string{"gpu": "yes"}, Leaving: true}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != m.Role || got.Machine != m.Machine || got.ControlAddr != m.ControlAddr || got.BootEpoch != 42 ||
		got.Version != "v1" || got.Labels["gpu"] != "yes" || !got.Leaving {
		t.Fatalf("round trip: %+v", got)
	}

	big := Meta{Role: RoleDaemon, Labels: map[string]string{"blob": strings.Repeat("x", 520)}}
	_, err = big.Encode()
	var tooLarge *MetaTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size <= MaxMetaSize {
		t.Fatalf("Encode of a large meta: %v", err)
	}

	cfg := DefaultConfig()
	cfg.Name = "big"
	cfg.BindAddr = "127.0.0.1"
	cfg.Meta = big
	if r, err := Create(cfg); err == nil {
		_ = r.Shutdown()
		t.Fatal("Create accepted a meta over 512 bytes")
	} else if !errors.As(err, &tooLarge) {
		t.Fatalf("Create: %v", err)
	}

	r := newTestRing(t, "small")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.UpdateMeta(ctx, big); !errors.As(err, &tooLarge) {
		t.Fatalf("UpdateMeta of a large meta: %v", err)
	}
	if r.LocalMember().Meta.Labels["blob"] != "" {
		t.Fatal("rejected meta was applied")
	}
}

func TestLeaveIsVisibleAsLeave(t *testing.T) {
	t.Parallel()
	a, b, c := threeMembers(t)
	evA, evB := collect(a), collect(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, l := range []*eventLog{evA, evB} {
		testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			i := l.index(isEvent(MemberLeave, "c"))
			if i < 0 {
				return errors.New("no leave event for c")
			}
			if ev := l.get(i); !ev.Member.Meta.Leaving {
				t.Fatalf("leave event without Leaving: %+v", ev)
			}
			// The intent arrived before the leave itself.
			u := l.index(func(ev Event) bool {
				return ev.Type == MemberUpdate && ev.Member.Name == "c" && ev.Member.Meta.Leaving
			})
			if u < 0 || u > i {
				t.Fatalf("no update with Leaving before the leave (update at %d, leave at %d)", u, i)
			}
			return nil
		})
	}
	for _, r := range []*Ring{a, b} {
		if err := expectMembers(r, "a", "b"); err != nil {
			t.Error(err)
		}
	}
	if _, err := c.Join(context.Background(), []string{a.Addr()}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Join after Leave: %v", err)
	}
	if _, open := <-c.Events(); open {
		// Drain whatever was buffered; the channel must end closed.
		for range c.Events() {
		}
	}
	if err := c.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave: %v", err)
	}
}

func TestCrashIsVisibleAsLeaveWithoutIntent(t *testing.T) {
	t.Parallel()
	a, b, c := threeMembers(t)
	evA, evB := collect(a), collect(b)
	start := time.Now()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for _, l := range []*eventLog{evA, evB} {
		testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			i := l.index(isEvent(MemberLeave, "c"))
			if i < 0 {
				return errors.New("no leave event for c")
			}
			if ev := l.get(i); ev.Member.Meta.Leaving {
				t.Fatalf("crash reported as a graceful leave: %+v", ev)
			}
			return nil
		})
	}
	t.Logf("crash detected by both survivors after %s", time.Since(start).Round(time.Millisecond))
	for _, r := range []*Ring{a, b} {
		if err := expectMembers(r, "a", "b"); err != nil {
			t.Error(err)
		}
	}
}

func TestPartitionHealsByRejoin(t *testing.T) {
	t.Parallel()
	// One loopback IP per member, so the fault transport can attribute
	// incoming streams to a peer.
	fts := map[string]*FaultTransport{}
	mk := func(name, ip string) *Ring {
		ft, err := NewFaultTransport(ip, 0, testutil.Logger(name+"-ft"))
		if err != nil {
			t.Fatal(err)
		}
		fts[name] = ft
		return newTestRing(t, name, func(c *Config) {
			c.Transport = ft
			c.RejoinInterval = 300 * time.Millisecond
			// The isolated side gets no suspicion confirmations and would
			// wait SuspicionMaxTimeoutMult times the minimum: keep it at
			// the minimum. Stop gossiping to the dead quickly, so that
			// only the rejoin loop can heal the split.
			c.Profile.SuspicionMaxTimeoutMult = 1
			c.Profile.GossipToTheDeadTime = 500 * time.Millisecond
		})
	}
	a, b, c := mk("a", "127.0.0.11"), mk("b", "127.0.0.12"), mk("c", "127.0.0.13")
	join(t, b, a.Addr())
	join(t, c, a.Addr())
	for _, r := range []*Ring{a, b, c} {
		testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return expectMembers(r, "a", "b", "c") })
	}
	evA := collect(a)

	start := time.Now()
	fts["c"].Partition(a.Addr(), b.Addr())
	for _, r := range []*Ring{a, b} {
		testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error { return expectMembers(r, "a", "b") })
	}
	t.Logf("partition detected by a and b after %s", time.Since(start).Round(time.Millisecond))
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error { return expectMembers(c, "c") })
	t.Logf("partition detected by c after %s", time.Since(start).Round(time.Millisecond))
	if i := evA.index(isEvent(MemberLeave, "c")); i < 0 || evA.get(i).Member.Meta.Leaving {
		t.Fatalf("a: leave event for c missing or marked graceful (index %d)", i)
	}
	if fts["c"].FaultStats().Dropped == 0 {
		t.Error("the partition dropped nothing")
	}

	start = time.Now()
	fts["c"].Heal()
	for _, r := range []*Ring{a, b, c} {
		testutil.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error { return expectMembers(r, "a", "b", "c") })
	}
	t.Logf("partition healed after %s", time.Since(start).Round(time.Millisecond))
	if a.Stats().Rejoins+b.Stats().Rejoins+c.Stats().Rejoins == 0 {
		t.Error("healed without a single rejoin")
	}
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if evA.index(isEvent(MemberJoin, "c")) < 0 {
			return errors.New("a got no join event for c after the heal")
		}
		return nil
	})
}

func TestWrongSecretKeyCannotJoin(t *testing.T) {
	t.Parallel()
	key1 := []byte("0123456789abcdef")
	key2 := []byte("fedcba9876543210")
	a := newTestRing(t, "a", func(c *Config) { c.SecretKey = key1 })
	b := newTestRing(t, "b", func(c *Config) { c.SecretKey = key1 })
	join(t, b, a.Addr())
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return expectMembers(a, "a", "b") })

	for name, key := range map[string][]byte{"wrongkey": key2, "nokey": nil} {
		r := newTestRing(t, name, func(c *Config) { c.SecretKey = key })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := r.Join(ctx, []string{a.Addr()})
		cancel()
		if err == nil || n != 0 {
			t.Fatalf("%s joined an encrypted ring: n=%d err=%v", name, n, err)
		}
		if !strings.Contains(err.Error(), "secret key") {
			t.Errorf("%s: join error does not mention the key: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
		if err := expectMembers(r, name); err != nil {
			t.Error(err)
		}
	}
	if err := expectMembers(a, "a", "b"); err != nil {
		t.Error(err)
	}

	cfg := DefaultConfig()
	cfg.BindAddr = "127.0.0.1"
	cfg.SecretKey = []byte("short")
	if r, err := Create(cfg); err == nil {
		_ = r.Shutdown()
		t.Fatal("Create accepted a 5-byte key")
	}
}

func TestJoinRespectsContext(t *testing.T) {
	t.Parallel()
	r := newTestRing(t, "lonely")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Join(ctx, []string{"127.0.0.1:1"}); err == nil {
		t.Fatal("Join with a cancelled context succeeded")
	}
	if _, err := r.Join(context.Background(), nil); err == nil {
		t.Fatal("Join without seeds succeeded")
	}
}
