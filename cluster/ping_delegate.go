package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// RTTSample is a round-trip time measured to a member.
type RTTSample struct {
	// RTT is the measured round-trip time.
	RTT time.Duration
	// At is when it was measured.
	At time.Time
}

// pingDelegate records the RTT of every successful probe memberlist makes.
// memberlist probes one member per ProbeInterval, so a given member gets a
// sample about every N * ProbeInterval.
type pingDelegate struct {
	r *Ring
}

var _ memberlist.PingDelegate = pingDelegate{}

// AckPayload returns nothing: acks carry no payload.
func (d pingDelegate) AckPayload() []byte { return nil }

// NotifyPingComplete records the RTT of a probe.
func (d pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	d.r.recordRTT(other.Name, rtt)
}

func (r *Ring) recordRTT(name string, rtt time.Duration) {
	r.mu.Lock()
	r.rtts[name] = RTTSample{RTT: rtt, At: time.Now()}
	r.mu.Unlock()
}
