package cluster

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Stats are counters of a Ring's traffic and event delivery.
type Stats struct {
	// PacketsSent is the number of UDP packets handed to the transport.
	PacketsSent uint64
	// PacketBytesSent is their total size.
	PacketBytesSent uint64
	// PacketsReceived is the number of UDP packets received.
	PacketsReceived uint64
	// PacketBytesReceived is their total size.
	PacketBytesReceived uint64
	// StreamsOpened is the number of TCP streams dialled.
	StreamsOpened uint64
	// StreamsAccepted is the number of TCP streams accepted.
	StreamsAccepted uint64
	// StreamBytesSent is the number of bytes written to streams.
	StreamBytesSent uint64
	// StreamBytesReceived is the number of bytes read from streams.
	StreamBytesReceived uint64
	// EventsDropped is the number of events lost because the Events buffer
	// was full.
	EventsDropped uint64
	// Rejoins is the number of successful re-joins by the rejoin loop.
	Rejoins uint64
}

// MessagesSent is the number of packets and streams sent.
func (s Stats) MessagesSent() uint64 { return s.PacketsSent + s.StreamsOpened }

// MessagesReceived is the number of packets and streams received.
func (s Stats) MessagesReceived() uint64 { return s.PacketsReceived + s.StreamsAccepted }

// BytesSent is the number of bytes sent in packets and streams.
func (s Stats) BytesSent() uint64 { return s.PacketBytesSent + s.StreamBytesSent }

// BytesReceived is the number of bytes received in packets and streams.
func (s Stats) BytesReceived() uint64 { return s.PacketBytesReceived + s.StreamBytesReceived }

// nodeAwareShim adapts a plain Transport to memberlist.NodeAwareTransport.
type nodeAwareShim struct {
	memberlist.Transport
}

func (s nodeAwareShim) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return s.WriteTo(b, a.Addr)
}

func (s nodeAwareShim) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return s.DialTimeout(a.Addr, timeout)
}

func asNodeAware(t memberlist.Transport) memberlist.NodeAwareTransport {
	if na, ok := t.(memberlist.NodeAwareTransport); ok {
		return na
	}
	return nodeAwareShim{t}
}

// autoBindPorter is implemented by transports that can report the port they
// bound to (NetTransport, FaultTransport).
type autoBindPorter interface {
	GetAutoBindPort() int
}

// countingTransport wraps the ring's transport to count traffic. It also
// tracks open streams and closes them on Shutdown, so that no push/pull or
// join outlives the ring.
type countingTransport struct {
	inner    memberlist.NodeAwareTransport
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	closing  chan struct{} // closed when Shutdown starts: stop delivering
	done     chan struct{} // closed when the inner transport is shut down
	once     sync.Once
	wg       sync.WaitGroup

	packetsSent, packetBytesSent     atomic.Uint64
	packetsRecv, packetBytesRecv     atomic.Uint64
	streamsOpened, streamsAccepted   atomic.Uint64
	streamBytesSent, streamBytesRecv atomic.Uint64

	connMu sync.Mutex
	conns  map[*countedConn]struct{}
	closed bool
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(inner memberlist.Transport) *countingTransport {
	t := &countingTransport{
		inner:    asNodeAware(inner),
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		conns:    make(map[*countedConn]struct{}),
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

// forwardPackets counts and forwards incoming packets. It keeps draining the
// inner transport until that one is shut down, since NetTransport's
// listeners block on their channels.
func (t *countingTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.inner.PacketCh()
	for {
		select {
		case p := <-in:
			if p == nil {
				continue
			}
			t.packetsRecv.Add(1)
			t.packetBytesRecv.Add(uint64(len(p.Buf)))
			select {
			case t.packetCh <- p:
			case <-t.closing:
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.inner.StreamCh()
	for {
		select {
		case c := <-in:
			if c == nil {
				continue
			}
			t.streamsAccepted.Add(1)
			cc, err := t.track(c)
			if err != nil {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- cc:
			case <-t.closing:
				_ = cc.Close()
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) track(c net.Conn) (*countedConn, error) {
	cc := &countedConn{Conn: c, t: t}
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if t.closed {
		return nil, errors.New("gossip transport is shut down")
	}
	t.conns[cc] = struct{}{}
	return cc, nil
}

func (t *countingTransport) untrack(cc *countedConn) {
	t.connMu.Lock()
	delete(t.conns, cc)
	t.connMu.Unlock()
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.packetsSent.Add(1)
	t.packetBytesSent.Add(uint64(len(b)))
	return t.inner.WriteToAddress(b, a)
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	select {
	case <-t.closing:
		return nil, errors.New("gossip transport is shut down")
	default:
	}
	c, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	t.streamsOpened.Add(1)
	cc, err := t.track(c)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return cc, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown shuts the inner transport down, closes every open stream and
// stops the forwarders. It is idempotent.
func (t *countingTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.closing)
		t.connMu.Lock()
		t.closed = true
		open := make([]*countedConn, 0, len(t.conns))
		for c := range t.conns {
			open = append(open, c)
		}
		t.connMu.Unlock()
		for _, c := range open {
			_ = c.Conn.Close()
		}
		err = t.inner.Shutdown()
		close(t.done)
		t.wg.Wait()
	})
	return err
}

func (t *countingTransport) snapshot(s *Stats) {
	s.PacketsSent = t.packetsSent.Load()
	s.PacketBytesSent = t.packetBytesSent.Load()
	s.PacketsReceived = t.packetsRecv.Load()
	s.PacketBytesReceived = t.packetBytesRecv.Load()
	s.StreamsOpened = t.streamsOpened.Load()
	s.StreamsAccepted = t.streamsAccepted.Load()
	s.StreamBytesSent = t.streamBytesSent.Load()
	s.StreamBytesReceived = t.streamBytesRecv.Load()
}

// countedConn counts a stream's bytes and untracks itself on Close.
type countedConn struct {
	net.Conn
	t    *countingTransport
	once sync.Once
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.streamBytesRecv.Add(uint64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.t.streamBytesSent.Add(uint64(n))
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.t.untrack(c) })
	return c.Conn.Close()
}
