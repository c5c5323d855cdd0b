package cluster

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

func newFT(t *testing.T) (*FaultTransport, string) {
	t.Helper()
	ft, err := NewFaultTransport("127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ft.Shutdown() })
	ip, port, err := ft.FinalAdvertiseAddr("", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ft, net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// receive waits up to d for a packet on ft.
func receive(ft *FaultTransport, d time.Duration) ([]byte, bool) {
	select {
	case p := <-ft.PacketCh():
		return p.Buf, true
	case <-time.After(d):
		return nil, false
	}
}

func TestFaultTransportFaults(t *testing.T) {
	t.Parallel()
	a, addrA := newFT(t)
	b, addrB := newFT(t)

	if _, err := a.WriteTo([]byte("hello"), addrB); err != nil {
		t.Fatal(err)
	}
	if buf, ok := receive(b, 2*time.Second); !ok || string(buf) != "hello" {
		t.Fatalf("clean packet: %q %v", buf, ok)
	}

	// Loss applies to packets and streams.
	a.SetDropRate(1)
	_, _ = a.WriteTo([]byte("lost"), addrB)
	if _, ok := receive(b, 200*time.Millisecond); ok {
		t.Fatal("packet delivered at drop rate 1")
	}
	if _, err := a.DialTimeout(addrB, time.Second); err == nil {
		t.Fatal("dial succeeded at drop rate 1")
	}
	a.Heal()

	// One-way: a cannot reach b, b still reaches a.
	a.OneWay(addrB)
	_, _ = a.WriteTo([]byte("one-way"), addrB)
	if _, ok := receive(b, 200*time.Millisecond); ok {
		t.Fatal("packet crossed a one-way partition")
	}
	_, _ = b.WriteTo([]byte("back"), addrA)
	if buf, ok := receive(a, 2*time.Second); !ok || string(buf) != "back" {
		t.Fatalf("reverse direction of a one-way partition: %q %v", buf, ok)
	}
	a.Heal()

	// Partition: both directions, and dials hang until their timeout.
	a.Partition(addrB)
	_, _ = b.WriteTo([]byte("in"), addrA)
	if _, ok := receive(a, 200*time.Millisecond); ok {
		t.Fatal("packet from a partitioned address delivered")
	}
	start := time.Now()
	_, err := a.DialTimeout(addrB, 150*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("dial into a partition: %v after %s", err, time.Since(start))
	}
	a.Heal()

	// Stall: traffic is held, then delivered.
	b.Stall(300 * time.Millisecond)
	start = time.Now()
	_, _ = a.WriteTo([]byte("held"), addrB)
	buf, ok := receive(b, 3*time.Second)
	if !ok || string(buf) != "held" {
		t.Fatalf("stalled packet: %q %v", buf, ok)
	}
	if held := time.Since(start); held < 250*time.Millisecond {
		t.Fatalf("stalled packet delivered after %s", held)
	}

	// Delay.
	a.SetDelay(200 * time.Millisecond)
	start = time.Now()
	_, _ = a.WriteTo([]byte("slow"), addrB)
	if buf, ok := receive(b, 3*time.Second); !ok || string(buf) != "slow" || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("delayed packet: %q %v after %s", buf, ok, time.Since(start))
	}
	a.Heal()

	// Streams work when healed.
	c, err := a.DialTimeout(addrB, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case s := <-b.StreamCh():
		_ = s.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("no stream accepted")
	}
	if a.FaultStats().Dropped == 0 {
		t.Error("no drops counted")
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
