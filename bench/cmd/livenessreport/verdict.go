package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/failure"
	"github.com/doractl/doractl/proto"
)

// The doractl verdict: the coordinator's failure.Detector, wired as coordinator/liveness.go
// wires it. The coordinator member's ring events feed GossipJoin/GossipGone; every daemon
// member keeps a real proto.Conn control link (kernel TCP over loopback, between the two
// members' loopback IPs) to the coordinator, with the daemon session's keepalive and idle
// timeout; registration reports LinkUp, a closed link LinkDown, every read Heard.
// ControlCheck pings over that link (coordinator.Server.controlCheck), Ping is the
// coordinator ring's direct gossip ping, and the control address is a real listener of the
// daemon. A dead verdict is a failure.Dead state on the detector's subscription.
//
// Loss model of the control link. TCP does not lose bytes: it retransmits. The link is the
// real kernel TCP connection with a shim on each end (segLink) that treats every write as
// one segment and drops it with the same per-packet probability as the members'
// FaultTransports, rolled once for the sender's transport and once for the receiver's (as
// a gossip packet is); a dropped segment is resent after the retransmission timeout,
// 200 ms (Linux's minimum RTO, what a loopback/LAN RTT gives) doubling per loss of the same
// segment, and later segments wait behind it (in-order delivery). A reconnect's SYN is lost
// the same way, with the SYN timeout of 1 s doubling. A stalled member (FaultTransport.Stall)
// sends nothing on its link and does not dial until the stall ends; what it was sent waits
// in its socket buffer, as in a frozen process.
const (
	segRTO        = 200 * time.Millisecond
	synRTO        = time.Second
	maxRTO        = 60 * time.Second
	maxRetries    = 15                     // Linux tcp_retries2
	never         = 24 * time.Hour         // delivery time of a segment TCP gave up on
	linkKeepAlive = 500 * time.Millisecond // daemon sessionKeepAlive, coordinator LinkKeepAlive
	linkIdle      = 5 * time.Second        // daemon sessionIdleTimeout, coordinator LinkIdleTimeout
	checkTimeout  = time.Second            // coordinator ControlCheckTimeout
	reconnectMin  = 100 * time.Millisecond // daemon ReconnectMin
	reconnectMax  = 5 * time.Second        // daemon ReconnectMax
)

// endpoint is one member's side of the control links: its transport's loss and its stalls.
type endpoint struct {
	ft         *cluster.FaultTransport
	stallUntil atomic.Int64 // unix nanos
	vanished   atomic.Bool  // the host is gone: its port never answers
}

func (e *endpoint) dropRate() float64 { return e.ft.DropRate() }

// stalledUntil is the end of the current stall (zero time if none).
func (e *endpoint) stalledUntil() time.Time { return time.Unix(0, e.stallUntil.Load()) }

func (e *endpoint) stall(d time.Duration) { e.stallUntil.Store(time.Now().Add(d).UnixNano()) }

// lost rolls a segment from `from` to `to` against both transports' loss.
func lost(from, to *endpoint) bool {
	roll := func(p float64) bool { return p > 0 && rand.Float64() < p }
	return roll(from.dropRate()) || roll(to.dropRate())
}

// retransmitDelay is how much later than its first send a segment from `from` to `to`
// arrives: one RTO, doubling, per loss. After maxRetries losses TCP gives up on the
// segment (Linux tcp_retries2); it then never arrives, and the idle timeout ends the link.
func retransmitDelay(from, to *endpoint) time.Duration {
	var d time.Duration
	rto := segRTO
	for range maxRetries {
		if !lost(from, to) {
			return d
		}
		d += rto
		rto = min(2*rto, maxRTO)
	}
	return never
}

// segLink is a net.Conn whose writes are delivered as TCP segments under the loss model.
type segLink struct {
	net.Conn
	from, to *endpoint
	onRead   func()

	mu     sync.Mutex
	last   time.Time // delivery time of the previous segment
	queue  chan segment
	closed chan struct{}
	once   sync.Once
}

type segment struct {
	at   time.Time
	data []byte
}

func newSegLink(c net.Conn, from, to *endpoint, onRead func()) *segLink {
	l := &segLink{Conn: c, from: from, to: to, onRead: onRead, queue: make(chan segment, 4096), closed: make(chan struct{})}
	go l.send()
	return l
}

func (l *segLink) Write(b []byte) (int, error) {
	select {
	case <-l.closed:
		return 0, net.ErrClosed
	default:
	}
	l.mu.Lock()
	at := time.Now()
	if s := l.from.stalledUntil(); s.After(at) {
		at = s
	}
	at = at.Add(retransmitDelay(l.from, l.to))
	if at.Before(l.last) {
		at = l.last
	}
	l.last = at
	seg := segment{at: at, data: append([]byte(nil), b...)}
	l.mu.Unlock()
	select {
	case l.queue <- seg:
		return len(b), nil
	case <-l.closed:
		return 0, net.ErrClosed
	}
}

func (l *segLink) send() {
	for {
		select {
		case <-l.closed:
			return
		case seg := <-l.queue:
			if d := time.Until(seg.at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-l.closed:
					t.Stop()
					return
				}
			}
			if _, err := l.Conn.Write(seg.data); err != nil {
				_ = l.Close()
				return
			}
		}
	}
}

// SetWriteDeadline is a no-op: writes only queue segments (the socket buffer), and the
// queue's delivery must not be cut short by the deadline of when it was queued.
func (l *segLink) SetWriteDeadline(time.Time) error { return nil }

func (l *segLink) Read(b []byte) (int, error) {
	n, err := l.Conn.Read(b)
	if n > 0 && l.onRead != nil {
		l.onRead()
	}
	return n, err
}

func (l *segLink) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Conn.Close()
}

// verdicts is the coordinator side: its detector, its daemon port and its sessions.
type verdicts struct {
	self *endpoint
	ring *cluster.Ring
	det  *failure.Detector
	ln   net.Listener

	mu       sync.Mutex
	peers    map[string]*endpoint // by IP
	sessions map[string]*proto.Conn
	deaths   []death
	wg       sync.WaitGroup
	done     chan struct{}
}

func newVerdicts(ip string, ft *cluster.FaultTransport, ring *cluster.Ring, prof cluster.Profile) (*verdicts, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("coordinator daemon port: %w", err)
	}
	v := &verdicts{self: &endpoint{ft: ft}, ring: ring, ln: ln, peers: map[string]*endpoint{},
		sessions: map[string]*proto.Conn{}, done: make(chan struct{})}
	dc := failure.DefaultDetectorConfig()
	dc.StallGrace = prof.StallGrace // as coordinator/liveness.go sets them
	dc.ConfirmProbeTimeout = prof.ConfirmTimeout
	dc.DialPort = v.dialPort
	dc.ControlCheck = v.controlCheck
	dc.Ping = func(ctx context.Context, name string) error {
		_, err := ring.Ping(ctx, name)
		return err
	}
	v.det = failure.NewDetector(dc)
	sub, unsub := v.det.Subscribe()
	v.wg.Add(2)
	go func() {
		defer v.wg.Done()
		defer unsub()
		for {
			select {
			case <-v.done:
				return
			case st, ok := <-sub:
				if !ok {
					return
				}
				if st.Verdict == failure.Dead {
					v.mu.Lock()
					v.deaths = append(v.deaths, death{observer: "verdict", member: st.Name, at: st.Since})
					v.mu.Unlock()
				}
			}
		}
	}()
	go v.accept()
	return v, nil
}

// onEvent is liveness.onRingEvent.
func (v *verdicts) onEvent(ev cluster.Event) {
	m := ev.Member
	if m.Name == v.ring.Name() {
		return
	}
	switch ev.Type {
	case cluster.MemberJoin, cluster.MemberUpdate:
		v.det.GossipJoin(m.Name, m.Meta.ControlAddr)
	case cluster.MemberLeave:
		v.det.GossipGone(m.Name, m.Meta.Leaving)
	}
}

// dialPort is the detector's dial of a daemon's control port under the loss model: the
// SYN is lost as a control-link segment is (its 1 s retransmit is past the dial timeout,
// so a lost SYN is a timeout), and a vanished host never answers. A stalled member's port still accepts, as a stopped process's
// listening socket does (the kernel completes the handshake); a closed one refuses.
func (v *verdicts) dialPort(ctx context.Context, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	v.mu.Lock()
	peer := v.peers[host]
	v.mu.Unlock()
	if peer != nil && (peer.vanished.Load() || lost(v.self, peer)) {
		<-ctx.Done()
		return fmt.Errorf("dial %s: %w", addr, ctx.Err())
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// controlCheck is coordinator.Server.controlCheck: a ping over the daemon's link.
func (v *verdicts) controlCheck(ctx context.Context, name string) error {
	v.mu.Lock()
	c := v.sessions[name]
	v.mu.Unlock()
	if c == nil {
		return fmt.Errorf("no control link to daemon %q", name)
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		return fmt.Errorf("control link to daemon %q: %w", name, err)
	}
	return nil
}

func (v *verdicts) accept() {
	defer v.wg.Done()
	for {
		nc, err := v.ln.Accept()
		if err != nil {
			return
		}
		host, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
		v.mu.Lock()
		peer := v.peers[host]
		v.mu.Unlock()
		if peer == nil {
			_ = nc.Close()
			continue
		}
		var name atomic.Pointer[string]
		link := newSegLink(nc, v.self, peer, func() {
			if n := name.Load(); n != nil {
				v.det.Heard(*n)
			}
		})
		var conn *proto.Conn
		conn = proto.NewConn(link, proto.Options{
			KeepAlive:   linkKeepAlive,
			IdleTimeout: linkIdle,
			OnRequest: func(ctx context.Context, typ string, body proto.Body) (any, error) {
				if typ != "register" {
					return nil, errors.New("unknown request")
				}
				var reg registration
				if err := body.Decode(&reg); err != nil {
					return nil, err
				}
				name.Store(&reg.Name)
				v.mu.Lock()
				old := v.sessions[reg.Name]
				v.sessions[reg.Name] = conn
				v.mu.Unlock()
				if old != nil && old != conn {
					_ = old.Close()
				}
				v.det.GossipJoin(reg.Name, reg.ControlAddr)
				v.det.LinkUp(reg.Name)
				return nil, nil
			},
			OnClose: func(err error) {
				n := name.Load()
				if n == nil {
					return
				}
				v.mu.Lock()
				current := v.sessions[*n] == conn
				if current {
					delete(v.sessions, *n)
				}
				v.mu.Unlock()
				if current {
					v.det.LinkDown(*n, err)
				}
			},
		})
	}
}

type registration struct {
	Name        string
	ControlAddr string
}

// deathsSeen returns the dead verdicts on name ("" any) in [from, to].
func (v *verdicts) deathsSeen(name string, from, to time.Time) []death {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []death
	for _, d := range v.deaths {
		if (name == "" || d.member == name) && !d.at.Before(from) && !d.at.After(to) {
			out = append(out, d)
		}
	}
	return out
}

func (v *verdicts) close() {
	close(v.done)
	_ = v.ln.Close()
	v.mu.Lock()
	for _, c := range v.sessions {
		_ = c.Close()
	}
	v.mu.Unlock()
	v.det.Close()
	v.wg.Wait()
}

// daemonLink is a daemon member's side: its control port and its session loop.
type daemonLink struct {
	self    *endpoint
	ctlAddr string
	port    net.Listener
	stop    chan struct{}
	wg      sync.WaitGroup
}

// attach gives a daemon member a control port and a session loop to the coordinator.
func (v *verdicts) attach(name, ip string, ft *cluster.FaultTransport) (*daemonLink, error) {
	port, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("control port of %s: %w", name, err)
	}
	d := &daemonLink{self: &endpoint{ft: ft}, ctlAddr: port.Addr().String(), port: port, stop: make(chan struct{})}
	v.mu.Lock()
	v.peers[ip] = d.self
	v.mu.Unlock()
	d.wg.Add(2)
	go func() { // the control port accepts (and drops) connections while the member lives
		defer d.wg.Done()
		for {
			c, err := port.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	go func() {
		defer d.wg.Done()
		d.session(name, ip, v.ln.Addr().String(), v.self)
	}()
	return d, nil
}

// wait sleeps d, or until stop (false).
func (d *daemonLink) wait(t time.Duration) bool {
	if t <= 0 {
		return true
	}
	timer := time.NewTimer(t)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-d.stop:
		return false
	}
}

// session is the daemon's coordinator session: dial, register, run until the link
// closes, back off, again; nothing while stalled.
func (d *daemonLink) session(name, ip, coord string, peer *endpoint) {
	backoff := reconnectMin
	for {
		if !d.wait(time.Until(d.self.stalledUntil())) {
			return
		}
		for rto := synRTO; lost(d.self, peer); rto = min(2*rto, maxRTO) {
			if !d.wait(rto) {
				return
			}
		}
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		nc, err := dialer.Dial("tcp", coord)
		if err == nil {
			conn := proto.NewConn(newSegLink(nc, d.self, peer, nil), proto.Options{KeepAlive: linkKeepAlive, IdleTimeout: linkIdle})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = conn.Request(ctx, "register", registration{Name: name, ControlAddr: d.ctlAddr}, nil)
			cancel()
			if err == nil {
				backoff = reconnectMin
				select {
				case <-conn.Done():
				case <-d.stop:
					_ = conn.Close()
					return
				}
			}
			_ = conn.Close()
		}
		if !d.wait(backoff) {
			return
		}
		backoff = min(2*backoff, reconnectMax)
	}
}

// close ends the session and closes the control port (the process is gone).
func (d *daemonLink) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	_ = d.port.Close()
	d.wg.Wait()
}
