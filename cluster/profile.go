package cluster

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Names of the built-in profiles.
const (
	ProfileLAN   = "lan"
	ProfileWAN   = "wan"
	ProfileLocal = "local"
	ProfileFlaky = "flaky"
)

// ProfileNames lists the built-in profiles, the default first.
func ProfileNames() []string {
	return []string{ProfileLAN, ProfileWAN, ProfileLocal, ProfileFlaky}
}

// Profile is a named set of memberlist timing and fan-out settings. Apply
// copies them onto a memberlist.Config.
type Profile struct {
	// Name is the profile's name (see ProfileNames).
	Name string
	// ProbeInterval is the time between failure-detection probes.
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a direct probe's ack.
	ProbeTimeout time.Duration
	// IndirectChecks is the number of members asked to probe indirectly.
	IndirectChecks int
	// SuspicionMult scales the suspicion timeout: SuspicionMult *
	// max(1, log10(N)) * ProbeInterval before a suspect is declared dead.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout when few
	// confirmations arrive: the timeout starts at SuspicionMaxTimeoutMult
	// times the minimum and shrinks with each independent confirmation.
	SuspicionMaxTimeoutMult int
	// RetransmitMult scales how many times a broadcast is retransmitted:
	// RetransmitMult * ceil(log10(N+1)).
	RetransmitMult int
	// AwarenessMaxMultiplier bounds the Lifeguard local-health backoff of
	// the probe interval and timeout.
	AwarenessMaxMultiplier int
	// GossipInterval is the time between gossip rounds.
	GossipInterval time.Duration
	// GossipNodes is the number of members gossiped to each round.
	GossipNodes int
	// GossipToTheDeadTime is how long dead members still receive gossip (and
	// how long memberlist remembers them).
	GossipToTheDeadTime time.Duration
	// PushPullInterval is the time between full state synchronisations.
	PushPullInterval time.Duration
	// TCPTimeout bounds stream connections (push/pull, TCP fallback pings).
	TCPTimeout time.Duration
	// DisableTCPPings turns off the TCP fallback of failed UDP probes.
	DisableTCPPings bool
	// DeadNodeReclaimTime is how long after a member's death another
	// address may take over its name (a restart on a new port); 0 means
	// never while memberlist still remembers the dead member.
	DeadNodeReclaimTime time.Duration
	// StallGrace is not a memberlist setting: it is how long the
	// coordinator keeps a member suspect when gossip declared it dead and it
	// answers nothing, but its control port still accepts connections (the
	// host answers, the process is stopped or starved), counted from when it
	// was last heard. 0 confirms the death with gossip. See
	// failure.DetectorConfig.StallGrace.
	StallGrace time.Duration
	// ConfirmTimeout is not a memberlist setting either: how long the
	// coordinator tries the control link, a gossip ping and the control port
	// of a member gossip declared dead before it confirms the death. See
	// failure.DetectorConfig.ConfirmProbeTimeout.
	ConfirmTimeout time.Duration
}

// profileFrom captures the settings of a memberlist.Config as a Profile.
func profileFrom(name string, c *memberlist.Config) Profile {
	return Profile{
		Name:                    name,
		ProbeInterval:           c.ProbeInterval,
		ProbeTimeout:            c.ProbeTimeout,
		IndirectChecks:          c.IndirectChecks,
		SuspicionMult:           c.SuspicionMult,
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult,
		RetransmitMult:          c.RetransmitMult,
		AwarenessMaxMultiplier:  c.AwarenessMaxMultiplier,
		GossipInterval:          c.GossipInterval,
		GossipNodes:             c.GossipNodes,
		GossipToTheDeadTime:     c.GossipToTheDeadTime,
		PushPullInterval:        c.PushPullInterval,
		TCPTimeout:              c.TCPTimeout,
		DisableTCPPings:         c.DisableTcpPings,
		DeadNodeReclaimTime:     c.DeadNodeReclaimTime,
	}
}

// ProfileByName returns a built-in profile. The empty name is "lan".
//
//   - lan: memberlist.DefaultLANConfig gossiping to the dead for 10 s (LAN:
//     30 s) with retransmit multiplier 6 (LAN: 4); a frozen process is dead
//     with gossip.
//   - wan: memberlist.DefaultWANConfig probing every 2 s (WAN: 5 s) with a
//     1.5 s probe timeout (WAN: 3 s) and suspicion multiplier 4 (WAN: 6), so
//     a vanished member is dead in about 12 s rather than 40 s; it gossips
//     to the dead for 10 s (WAN: 60 s) and waits at most 2 * the minimum
//     suspicion timeout for confirmations (WAN: 6 *); frozen processes get a
//     20 s stall grace.
//   - local: memberlist.DefaultLocalConfig (loopback, tests), with 3
//     indirect checks (local: 1).
//   - flaky: lan tuned for lossy links (Wi-Fi): more indirect checks, a
//     longer probe timeout, a larger suspicion multiplier and more
//     retransmits, trading detection time for fewer false deaths; it gossips
//     to the dead for 10 s, as lan; frozen processes get a 20 s stall grace.
//
// Every profile lets a restarted member reclaim its name from a dead entry
// after a short DeadNodeReclaimTime, so a daemon that comes back on a new port
// is not locked out until memberlist forgets the old entry.
func ProfileByName(name string) (Profile, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", ProfileLAN:
		p := profileFrom(ProfileLAN, memberlist.DefaultLANConfig())
		// Gossip to the dead for 10 s (LAN: 30 s). In the small rings of a
		// fleet, recently dead members are a large share of the gossip targets
		// and of memberlist's size estimate: with 30 s, a freeze right after
		// other deaths took 13.7 s to confirm because the other members'
		// suspicions and verdicts never reached the coordinator. The rejoin loop
		// (every 10 s) still heals a member declared dead falsely.
		p.GossipToTheDeadTime = 10 * time.Second
		// Retransmit broadcasts 6 * log10(N+1) times (LAN: 4), for the same reason.
		p.RetransmitMult = 6
		// Restarted daemons may take their name back 5 s after a death.
		p.DeadNodeReclaimTime = 5 * time.Second
		// A LAN answers well within a second.
		p.ConfirmTimeout = time.Second
		return p, nil
	case ProfileWAN:
		p := profileFrom(ProfileWAN, memberlist.DefaultWANConfig())
		// Probe every 2 s (WAN: 5 s): a vanished member is probed sooner.
		p.ProbeInterval = 2 * time.Second
		// Wait 1.5 s for a direct ack (WAN: 3 s): room for RTTs up to about 1 s.
		p.ProbeTimeout = 1500 * time.Millisecond
		// Stay suspect 4 * log10(N) probe intervals (WAN: 6), at least 8 s.
		p.SuspicionMult = 4
		// TCP fallback pings and push/pull give up after 10 s (WAN: 30 s).
		p.TCPTimeout = 10 * time.Second
		// Gossip to the dead for 10 s (WAN: 60 s): a dead entry counts in
		// memberlist's size estimate while it is kept, and from 4 counted
		// members on a suspect waits for 2 confirmations (SuspicionMult - 2).
		p.GossipToTheDeadTime = 10 * time.Second
		// Wait at most 2 * the minimum suspicion timeout, 16 s, for those
		// confirmations (WAN: 6 *, 48 s). With one recently dead member in a
		// ring of 3 live ones only one confirmation can come, and the next death
		// took 19–30 s; it now takes about 11 s. A member suspected by one peer
		// alone still has 16 s to refute, and doractl's verdict also needs its
		// control link silent.
		p.SuspicionMaxTimeoutMult = 2
		// A frozen process on a host that still answers is dead after 20 s
		// unheard, as long as dora's central heartbeat tolerates.
		p.StallGrace = 20 * time.Second
		// Two seconds to confirm: retried dials and pings over lossy, slow links.
		p.ConfirmTimeout = 2 * time.Second
		// Restarted daemons may take their name back 15 s after a death.
		p.DeadNodeReclaimTime = 15 * time.Second
		return p, nil
	case ProfileLocal:
		p := profileFrom(ProfileLocal, memberlist.DefaultLocalConfig())
		// Ask 3 members (local: 1) to probe indirectly: free on loopback, and
		// one lost indirect probe no longer makes a suspect.
		p.IndirectChecks = 3
		// Loopback answers within a second.
		p.ConfirmTimeout = time.Second
		// Loopback restarts are quick; allow reclaim after 1 s.
		p.DeadNodeReclaimTime = time.Second
		return p, nil
	case ProfileFlaky:
		p := profileFrom(ProfileFlaky, memberlist.DefaultLANConfig())
		// Lost probes are common: wait 1 s (LAN: 500 ms) for a direct ack.
		p.ProbeTimeout = time.Second
		// Ask 5 members (LAN: 3) to probe indirectly before suspecting.
		p.IndirectChecks = 5
		// Stay suspect 6 * log10(N) probe intervals (LAN: 4) before death.
		p.SuspicionMult = 6
		// Retransmit broadcasts 6 * log10(N+1) times (LAN: 4).
		p.RetransmitMult = 6
		// Gossip to the dead for 10 s (LAN: 30 s), as lan does. Dead entries
		// count in memberlist's size estimate while they are kept: with 30 s,
		// 3 live members and 3 recent deaths counted 6, so a suspect waited
		// for 4 confirmations (SuspicionMult - 2) that only 1 member could
		// give, and the death took 21–26 s instead of about 8 s.
		p.GossipToTheDeadTime = 10 * time.Second
		// A frozen process on a host that still answers is dead after 20 s
		// unheard, as long as dora's central heartbeat tolerates.
		p.StallGrace = 20 * time.Second
		// Two seconds to confirm: retried dials and pings over lossy links.
		p.ConfirmTimeout = 2 * time.Second
		// Restarted daemons may take their name back 10 s after a death.
		p.DeadNodeReclaimTime = 10 * time.Second
		return p, nil
	default:
		return Profile{}, fmt.Errorf("unknown gossip profile %q: valid profiles are %s", name, strings.Join(ProfileNames(), ", "))
	}
}

// Apply copies the profile's settings onto c.
func (p Profile) Apply(c *memberlist.Config) {
	c.ProbeInterval = p.ProbeInterval
	c.ProbeTimeout = p.ProbeTimeout
	c.IndirectChecks = p.IndirectChecks
	c.SuspicionMult = p.SuspicionMult
	c.SuspicionMaxTimeoutMult = p.SuspicionMaxTimeoutMult
	c.RetransmitMult = p.RetransmitMult
	c.AwarenessMaxMultiplier = p.AwarenessMaxMultiplier
	c.GossipInterval = p.GossipInterval
	c.GossipNodes = p.GossipNodes
	c.GossipToTheDeadTime = p.GossipToTheDeadTime
	c.PushPullInterval = p.PushPullInterval
	c.TCPTimeout = p.TCPTimeout
	c.DisableTcpPings = p.DisableTCPPings
	c.DeadNodeReclaimTime = p.DeadNodeReclaimTime
}

// MinSuspicionTimeout is memberlist's minimum suspicion timeout for a ring of
// n members. When the ring is too small for confirmations (n-2 <
// SuspicionMult-2, e.g. 3 members or fewer on lan) a suspect is declared dead
// exactly this long after it is first suspected; in larger rings the timeout
// starts at SuspicionMaxTimeoutMult times this and shrinks towards it as
// independent confirmations arrive. It approximates the stall a member
// survives.
func (p Profile) MinSuspicionTimeout(n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(p.SuspicionMult) * time.Duration(scale*1000) * p.ProbeInterval / 1000
}

// SuspicionTimeout is memberlist's suspicion timeout for a member suspected in a
// ring of n counted members (dead members count while they are gossiped to,
// GossipToTheDeadTime) once confirmations independent suspicions have arrived.
// It expects SuspicionMult-2 confirmations when n-2 members could give them,
// else none; it starts at SuspicionMaxTimeoutMult times the minimum and falls
// logarithmically towards the minimum as confirmations arrive.
func (p Profile) SuspicionTimeout(n, confirmations int) time.Duration {
	lo := p.MinSuspicionTimeout(n)
	k := p.SuspicionMult - 2
	if n-2 < k {
		k = 0
	}
	if k < 1 {
		return lo
	}
	hi := time.Duration(p.SuspicionMaxTimeoutMult) * lo
	frac := math.Log(float64(confirmations)+1) / math.Log(float64(k)+1)
	t := time.Duration(math.Floor(1000*(hi.Seconds()-frac*(hi-lo).Seconds()))) * time.Millisecond
	return max(t, lo)
}
