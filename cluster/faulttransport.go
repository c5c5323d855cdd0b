package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// FaultTransport is a memberlist.Transport over a real NetTransport (real
// UDP and TCP sockets, normally on loopback) that injects faults: random
// loss on packets and streams, delay, partitions, one-way partitions and
// stalls. Faults can be changed at any time from any goroutine.
//
// memberlist's MockNetwork cannot model a crashed or frozen process; this
// can. Loss applies to TCP as well as UDP, because memberlist's TCP fallback
// pings rescue every probe otherwise.
//
// Incoming streams come from ephemeral ports, so they are attributed to a
// peer by source IP only. A FaultTransport dials from its bind IP, so when
// every member binds its own loopback address (127.0.0.2, 127.0.0.3, ...)
// Partition blocks streams in both directions even if only one side uses a
// FaultTransport. Members sharing an IP can only be partitioned completely
// when each uses a FaultTransport and blocks the others.
type FaultTransport struct {
	nt       *memberlist.NetTransport
	bindIP   net.IP
	logger   hclog.Logger
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	closing  chan struct{}
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup

	mu         sync.Mutex
	dropRate   float64
	delay      time.Duration
	partition  map[string]bool // "ip:port" or "ip"
	oneWay     map[string]bool // "ip:port" or "ip"
	stallUntil time.Time
	changed    chan struct{} // closed and replaced on every fault change

	dropped atomic.Uint64
	delayed sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*FaultTransport)(nil)

// FaultStats counts what a FaultTransport did.
type FaultStats struct {
	// Dropped is the number of packets dropped and streams refused or closed.
	Dropped uint64
}

// NewFaultTransport binds a NetTransport on bindAddr:bindPort (port 0 picks
// a free port, see GetAutoBindPort) and wraps it. A nil logger discards logs.
func NewFaultTransport(bindAddr string, bindPort int, logger hclog.Logger) (*FaultTransport, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	nt, err := newNetTransport(bindAddr, bindPort, logger)
	if err != nil {
		return nil, fmt.Errorf("fault transport: %w", err)
	}
	t := &FaultTransport{
		nt:        nt,
		logger:    logger,
		packetCh:  make(chan *memberlist.Packet),
		streamCh:  make(chan net.Conn),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		partition: make(map[string]bool),
		oneWay:    make(map[string]bool),
		changed:   make(chan struct{}),
	}
	if ip := net.ParseIP(bindAddr); ip != nil && !ip.IsUnspecified() {
		t.bindIP = ip
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t, nil
}

// SetDropRate sets the probability (0..1) that a packet is dropped, in
// either direction, and that a stream is refused (dial) or closed (accept).
func (t *FaultTransport) SetDropRate(p float64) {
	t.update(func() { t.dropRate = min(max(p, 0), 1) })
}

// DropRate returns the current drop probability.
func (t *FaultTransport) DropRate() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropRate
}

// SetDelay delays every outgoing packet and dial by d, so RTTs to and from
// this member grow by d.
func (t *FaultTransport) SetDelay(d time.Duration) {
	t.update(func() { t.delay = max(d, 0) })
}

// Partition blocks all traffic to and from the given addresses ("ip:port" or
// a bare "ip" for every port). Calls accumulate until Heal.
func (t *FaultTransport) Partition(addrs ...string) {
	t.update(func() {
		for _, a := range addrs {
			t.partition[normAddr(a)] = true
		}
	})
}

// OneWay drops outgoing traffic to addr only ("ip:port" or "ip"); traffic
// from it still arrives. Calls accumulate until Heal.
func (t *FaultTransport) OneWay(to string) {
	t.update(func() { t.oneWay[normAddr(to)] = true })
}

// Stall holds all incoming and outgoing traffic for d, as if the process
// were frozen (SIGSTOP): outgoing sends block, incoming packets and streams
// are delivered when the stall ends.
func (t *FaultTransport) Stall(d time.Duration) {
	t.update(func() { t.stallUntil = time.Now().Add(d) })
}

// Heal removes every fault: loss, delay, partitions and stalls.
func (t *FaultTransport) Heal() {
	t.update(func() {
		t.dropRate = 0
		t.delay = 0
		clear(t.partition)
		clear(t.oneWay)
		t.stallUntil = time.Time{}
	})
}

// FaultStats returns the transport's fault counters.
func (t *FaultTransport) FaultStats() FaultStats {
	return FaultStats{Dropped: t.dropped.Load()}
}

// GetAutoBindPort returns the port the transport is bound to.
func (t *FaultTransport) GetAutoBindPort() int { return t.nt.GetAutoBindPort() }

func (t *FaultTransport) update(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
	close(t.changed)
	t.changed = make(chan struct{})
}

// normAddr canonicalises "host:port" or "host" for matching.
func normAddr(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		host, port = a, ""
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	if port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// blockedLocked reports whether traffic with addr is cut by the set, which
// holds "ip:port" and bare "ip" entries. ipOnly matches addr's IP against
// the IP of every entry (used for incoming streams, whose port is
// ephemeral). t.mu must be held.
func blockedLocked(set map[string]bool, addr string, ipOnly bool) bool {
	if len(set) == 0 {
		return false
	}
	n := normAddr(addr)
	host, _, err := net.SplitHostPort(n)
	if err != nil {
		host = n
	}
	if set[n] || set[host] {
		return true
	}
	if ipOnly {
		for k := range set {
			h, _, err := net.SplitHostPort(k)
			if err == nil && h == host {
				return true
			}
		}
	}
	return false
}

func (t *FaultTransport) roll(p float64) bool {
	return p > 0 && rand.Float64() < p
}

// waitStall blocks while the transport is stalled. It returns false if the
// transport is shutting down.
func (t *FaultTransport) waitStall() bool {
	for {
		t.mu.Lock()
		until, changed := t.stallUntil, t.changed
		t.mu.Unlock()
		wait := time.Until(until)
		if wait <= 0 {
			return true
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-changed:
			timer.Stop()
		case <-t.closing:
			timer.Stop()
			return false
		}
	}
}

// sleep waits d, or until shutdown (false).
func (t *FaultTransport) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.closing:
		return false
	}
}

func (t *FaultTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.nt.PacketCh()
	for {
		select {
		case p := <-in:
			if p == nil {
				continue
			}
			t.mu.Lock()
			drop := blockedLocked(t.partition, p.From.String(), false) || t.roll(t.dropRate)
			t.mu.Unlock()
			if drop {
				t.dropped.Add(1)
				continue
			}
			if !t.waitStall() {
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.closing:
			}
		case <-t.done:
			return
		}
	}
}

func (t *FaultTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.nt.StreamCh()
	for {
		select {
		case c := <-in:
			if c == nil {
				continue
			}
			remote := c.RemoteAddr().String()
			t.mu.Lock()
			drop := t.roll(t.dropRate)
			if !drop && t.attributable(remote) {
				drop = blockedLocked(t.partition, remote, true)
			}
			t.mu.Unlock()
			if drop {
				t.dropped.Add(1)
				_ = c.Close()
				continue
			}
			if !t.waitStall() {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.closing:
				_ = c.Close()
			}
		case <-t.done:
			return
		}
	}
}

// attributable reports whether an incoming stream's source IP identifies a
// peer: it does unless it is our own IP, shared by every loopback dialler.
func (t *FaultTransport) attributable(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if t.bindIP != nil {
		return !ip.Equal(t.bindIP)
	}
	return !ip.IsLoopback()
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *FaultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.nt.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (t *FaultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport. Dropped packets
// are reported as sent, as UDP would.
func (t *FaultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.mu.Lock()
	drop := blockedLocked(t.partition, a.Addr, false) || blockedLocked(t.oneWay, a.Addr, false) || t.roll(t.dropRate)
	delay := t.delay
	t.mu.Unlock()
	if drop {
		t.dropped.Add(1)
		return time.Now(), nil
	}
	if !t.waitStall() {
		return time.Time{}, errors.New("fault transport is shut down")
	}
	if delay > 0 {
		buf := slices.Clone(b)
		t.mu.Lock()
		select {
		case <-t.closing:
			t.mu.Unlock()
			return time.Time{}, errors.New("fault transport is shut down")
		default:
		}
		// Added under mu, before Shutdown can start waiting.
		t.delayed.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.delayed.Done()
			if t.sleep(delay) {
				_, _ = t.nt.WriteToAddress(buf, a)
			}
		}()
		return time.Now(), nil
	}
	return t.nt.WriteToAddress(b, a)
}

// PacketCh implements memberlist.Transport.
func (t *FaultTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport. A dial to a
// partitioned address hangs until its timeout, as it would on a real
// partition; a dial lost to the drop rate is refused at once.
func (t *FaultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	t.mu.Lock()
	cut := blockedLocked(t.partition, a.Addr, false) || blockedLocked(t.oneWay, a.Addr, false)
	drop := !cut && t.roll(t.dropRate)
	delay := t.delay
	t.mu.Unlock()
	if cut {
		t.dropped.Add(1)
		t.sleep(timeout)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: injectedTimeout{}}
	}
	if drop {
		t.dropped.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused (injected fault)")}
	}
	start := time.Now()
	if !t.waitStall() || !t.sleep(delay) {
		return nil, errors.New("fault transport is shut down")
	}
	left := timeout - time.Since(start)
	if timeout > 0 && left <= 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: injectedTimeout{}}
	}
	d := net.Dialer{Timeout: left}
	if timeout <= 0 {
		d.Timeout = 0
	}
	if t.bindIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.bindIP}
	}
	return d.Dial("tcp", a.Addr)
}

// StreamCh implements memberlist.Transport.
func (t *FaultTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport. It releases stalled senders,
// closes the sockets and stops the forwarders. It is idempotent.
func (t *FaultTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		t.mu.Lock()
		close(t.closing)
		t.mu.Unlock()
		err = t.nt.Shutdown()
		close(t.done)
		t.wg.Wait()
		t.delayed.Wait()
	})
	return err
}

// injectedTimeout is the error of a dial into a partition.
type injectedTimeout struct{}

func (injectedTimeout) Error() string   { return "i/o timeout (injected partition)" }
func (injectedTimeout) Timeout() bool   { return true }
func (injectedTimeout) Temporary() bool { return true }

// String describes the active faults, for logs.
func (t *FaultTransport) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	part := make([]string, 0, len(t.partition))
	for k := range t.partition {
		part = append(part, k)
	}
	slices.Sort(part)
	one := make([]string, 0, len(t.oneWay))
	for k := range t.oneWay {
		one = append(one, k)
	}
	slices.Sort(one)
	return "fault transport on port " + strconv.Itoa(t.nt.GetAutoBindPort()) +
		fmt.Sprintf(": drop=%.2f delay=%s partition=%v one-way=%v stalled=%t",
			t.dropRate, t.delay, part, one, time.Now().Before(t.stallUntil))
}
