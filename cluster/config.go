package cluster

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Config configures a Ring. Start from DefaultConfig; zero fields left in a
// Config given to Create take their defaults too.
type Config struct {
	// Name is the member's name, unique in the ring (e.g. "daemon-robot-a").
	Name string
	// BindAddr is the address the gossip listeners bind to.
	BindAddr string
	// BindPort is the gossip port for both UDP and TCP; 0 picks a free port,
	// reported by Ring.Addr.
	BindPort int
	// AdvertiseAddr is the address announced to peers; empty derives it from
	// the bind address (a private IP when bound to 0.0.0.0).
	AdvertiseAddr string
	// AdvertisePort is the port announced to peers; 0 is the bound port.
	AdvertisePort int
	// Profile holds memberlist's timing settings (see ProfileByName).
	Profile Profile
	// Meta is the member's initial metadata.
	Meta Meta
	// SecretKey is the optional cluster key (AES-128/192/256: 16, 24 or 32
	// bytes). Members with different keys cannot talk to each other.
	SecretKey []byte
	// Transport replaces memberlist's NetTransport (e.g. a FaultTransport).
	// When set, BindAddr and BindPort are ignored: the transport is already
	// bound. The Ring shuts it down.
	Transport memberlist.Transport
	// RejoinInterval is the period of re-joining known peers (seeds and every
	// member seen that is gone without leaving), so partitions heal:
	// memberlist never probes dead members again. Negative disables it.
	RejoinInterval time.Duration
	// RejoinTimeout is how long a member that went away without leaving is
	// re-joined before it is forgotten. Negative keeps it forever.
	RejoinTimeout time.Duration
	// Logger receives the ring's and memberlist's logs.
	Logger hclog.Logger
	// EventBuffer is the capacity of the Events channel.
	EventBuffer int
}

// DefaultConfig returns the default configuration.
func DefaultConfig() *Config {
	hostname, _ := os.Hostname()
	lan, _ := ProfileByName(ProfileLAN)
	return &Config{
		// The host name: unique as long as there is one member per host.
		Name: hostname,
		// All interfaces.
		BindAddr: "0.0.0.0",
		// A free port picked by the kernel.
		BindPort: 0,
		// Derived from the bind address.
		AdvertiseAddr: "",
		// The bound port.
		AdvertisePort: 0,
		// memberlist's LAN settings.
		Profile: lan,
		// No cluster key: gossip in clear text.
		SecretKey: nil,
		// memberlist's UDP/TCP NetTransport.
		Transport: nil,
		// A partition heals at most 10 s after the network does.
		RejoinInterval: 10 * time.Second,
		// A gone member is re-joined for a day, like Serf's reconnect timeout.
		RejoinTimeout: 24 * time.Hour,
		// Discard logs.
		Logger: hclog.NewNullLogger(),
		// Room for a burst of joins and leaves of a large fleet.
		EventBuffer: 1024,
	}
}

// withDefaults returns a copy of c with zero fields set to their defaults,
// and checks it.
func (c *Config) withDefaults() (Config, error) {
	if c == nil {
		c = DefaultConfig()
	}
	out := *c
	def := DefaultConfig()
	if out.Name == "" {
		out.Name = def.Name
	}
	if out.Name == "" {
		return out, fmt.Errorf("cluster config: no member name and no host name to default to")
	}
	if out.BindAddr == "" {
		out.BindAddr = def.BindAddr
	}
	if out.BindPort < 0 || out.BindPort > 65535 {
		return out, fmt.Errorf("cluster config: bind port %d out of range", out.BindPort)
	}
	if out.AdvertisePort < 0 || out.AdvertisePort > 65535 {
		return out, fmt.Errorf("cluster config: advertise port %d out of range", out.AdvertisePort)
	}
	if out.Profile.Name == "" && out.Profile.ProbeInterval == 0 {
		out.Profile = def.Profile
	}
	if out.Profile.ProbeInterval <= 0 || out.Profile.ProbeTimeout <= 0 {
		return out, fmt.Errorf("cluster config: profile %q has no probe interval or timeout", out.Profile.Name)
	}
	switch len(out.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return out, fmt.Errorf("cluster config: secret key is %d bytes, it must be 16, 24 or 32 (AES-128, -192 or -256)", len(out.SecretKey))
	}
	if out.RejoinInterval == 0 {
		out.RejoinInterval = def.RejoinInterval
	}
	if out.RejoinTimeout == 0 {
		out.RejoinTimeout = def.RejoinTimeout
	}
	if out.Logger == nil {
		out.Logger = def.Logger
	}
	if out.EventBuffer <= 0 {
		out.EventBuffer = def.EventBuffer
	}
	return out, nil
}
