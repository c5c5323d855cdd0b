package coordinator

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

// Config configures a coordinator Server. Start from DefaultConfig.
type Config struct {
	// ControlAddr is the HTTP+JSON control API listener ("" = no HTTP listener).
	ControlAddr string
	// DaemonAddr is the listener daemons dial ("" = none: daemons only via AcceptDaemon).
	DaemonAddr string

	// Gossip makes the coordinator join the SWIM ring; false = liveness from the daemon
	// links alone (in-process runs and tests).
	Gossip bool
	// GossipBindAddr is the address the gossip listeners bind to.
	GossipBindAddr string
	// GossipPort is the gossip port (UDP and TCP); 0 picks a free one.
	GossipPort int
	// AdvertiseAddr is the gossip address announced to peers ("" = derived from the bind address).
	AdvertiseAddr string
	// Profile is the gossip timing profile (see cluster.ProfileNames).
	Profile string
	// GossipOverrides changes some of the profile's settings (config file `gossip:`).
	GossipOverrides cluster.Overrides
	// SecretKey is the optional cluster key (16, 24 or 32 bytes): it encrypts gossip,
	// and daemon registrations and control API requests must prove it.
	SecretKey []byte

	// Name is the coordinator's member name in the ring.
	Name string
	// Machine is the machine id of the coordinator's host; nodes without a deploy section
	// go to the daemon on this machine when there is one.
	Machine string
	// DefaultMachine, when set, is the machine id nodes without a deploy section go to
	// (instead of the coordinator's own machine); start fails if no daemon runs there.
	DefaultMachine string
	// OneMachine places every node on the single connected daemon, whatever its deploy
	// section asks (doractl run: the whole dataflow on this machine).
	OneMachine bool
	// DataDir holds the store (coordinator.db); "" keeps everything in memory.
	DataDir string

	// DefaultGrace is the stop grace period when a stop request gives none.
	DefaultGrace time.Duration
	// KillWindowFactor sizes the window between SIGTERM and SIGKILL: grace * factor.
	KillWindowFactor float64
	// StopTimeoutSlack is added to grace + kill window for a stop's default deadline.
	StopTimeoutSlack time.Duration
	// StartTimeout bounds the wait for every daemon to acknowledge its nodes.
	StartTimeout time.Duration

	// RegisterTimeout is how long a new daemon link may take to send its register request.
	RegisterTimeout time.Duration
	// LinkKeepAlive is the ping period on daemon links.
	LinkKeepAlive time.Duration
	// LinkIdleTimeout closes a daemon link that has received nothing for this long.
	LinkIdleTimeout time.Duration
	// ControlCheckTimeout bounds the detector's direct check of a daemon over its link.
	ControlCheckTimeout time.Duration
	// RestoredTimeout is how long a daemon known from the store has to re-register
	// after the coordinator started before it is declared dead.
	RestoredTimeout time.Duration

	// Logger receives structured logs.
	Logger hclog.Logger
	// Version is reported by /v1/health and in the ring metadata.
	Version string
}

// DefaultConfig returns the configuration of a production coordinator.
func DefaultConfig() *Config {
	host, _ := os.Hostname()
	return &Config{
		// dora's control port, on every interface.
		ControlAddr: fmt.Sprintf("0.0.0.0:%d", proto.DefaultControlPort),
		// dora's daemon port, on every interface.
		DaemonAddr: fmt.Sprintf("0.0.0.0:%d", proto.DefaultDaemonPort),
		// Liveness from the gossip ring.
		Gossip: true,
		// Gossip on every interface.
		GossipBindAddr: "0.0.0.0",
		// The coordinator's well-known gossip port: daemons join here.
		GossipPort: proto.DefaultGossipPort,
		// Derived from the bind address.
		AdvertiseAddr: "",
		// Timings measured for a LAN.
		Profile: "lan",
		// The profile as built in.
		GossipOverrides: cluster.Overrides{},
		// Gossip in clear text.
		SecretKey: nil,
		// One coordinator per fleet: a fixed, readable name.
		Name: "coordinator",
		// The host name identifies the machine.
		Machine: host,
		// Nodes without a deploy section go to the coordinator's machine.
		DefaultMachine: "",
		// Deploy sections are honoured.
		OneMachine: false,
		// The XDG state folder, so a restarted coordinator remembers its dataflows.
		DataDir: defaultDataDir(),
		// dora 0.4's grace period.
		DefaultGrace: 10 * time.Second,
		// dora 0.4: SIGKILL half the grace after SIGTERM.
		KillWindowFactor: 0.5,
		// Room for the daemons to report the last outcomes.
		StopTimeoutSlack: 10 * time.Second,
		// Spawning is acknowledged at once; 30 s covers slow links.
		StartTimeout: 30 * time.Second,
		// A connected daemon registers at once.
		RegisterTimeout: 5 * time.Second,
		// Ten pings per idle timeout: a busy link is never idle.
		LinkKeepAlive: 500 * time.Millisecond,
		// Ten missed keepalives: the link is broken.
		LinkIdleTimeout: 5 * time.Second,
		// A round trip on a healthy link takes milliseconds.
		ControlCheckTimeout: time.Second,
		// Daemons redial every 5 s at most: six chances to re-register.
		RestoredTimeout: 30 * time.Second,
		// Logs to stderr at info level.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "coordinator", Level: hclog.Info}),
		// Unversioned build.
		Version: "dev",
	}
}

// defaultDataDir is $XDG_STATE_HOME/doractl/coordinator or ~/.local/state/doractl/coordinator.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "doractl", "coordinator")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state", "doractl", "coordinator")
}

// withDefaults returns a copy of c with zero timings, names and logger set to their
// defaults. Addresses, Gossip and DataDir keep their zero meaning.
func (c *Config) withDefaults() (Config, error) {
	if c == nil {
		c = DefaultConfig()
	}
	out := *c
	def := DefaultConfig()
	if out.Name == "" {
		out.Name = def.Name
	}
	if out.Machine == "" {
		out.Machine = def.Machine
	}
	if out.Profile == "" {
		out.Profile = def.Profile
	}
	if out.GossipBindAddr == "" {
		out.GossipBindAddr = def.GossipBindAddr
	}
	if out.DefaultGrace <= 0 {
		out.DefaultGrace = def.DefaultGrace
	}
	if out.KillWindowFactor <= 0 {
		out.KillWindowFactor = def.KillWindowFactor
	}
	if out.StopTimeoutSlack <= 0 {
		out.StopTimeoutSlack = def.StopTimeoutSlack
	}
	if out.StartTimeout <= 0 {
		out.StartTimeout = def.StartTimeout
	}
	if out.RegisterTimeout <= 0 {
		out.RegisterTimeout = def.RegisterTimeout
	}
	if out.LinkKeepAlive <= 0 {
		out.LinkKeepAlive = def.LinkKeepAlive
	}
	if out.LinkIdleTimeout <= 0 {
		out.LinkIdleTimeout = def.LinkIdleTimeout
	}
	if out.ControlCheckTimeout <= 0 {
		out.ControlCheckTimeout = def.ControlCheckTimeout
	}
	if out.RestoredTimeout <= 0 {
		out.RestoredTimeout = def.RestoredTimeout
	}
	if out.Logger == nil {
		out.Logger = def.Logger
	}
	if out.Version == "" {
		out.Version = def.Version
	}
	if out.GossipPort < 0 || out.GossipPort > 65535 {
		return out, fmt.Errorf("coordinator config: gossip port %d out of range", out.GossipPort)
	}
	if out.LinkKeepAlive >= out.LinkIdleTimeout {
		return out, fmt.Errorf("coordinator config: link keepalive %s must be shorter than the idle timeout %s", out.LinkKeepAlive, out.LinkIdleTimeout)
	}
	return out, nil
}

// killWindow is the SIGTERM-to-SIGKILL window for a grace period.
func (c *Config) killWindow(grace time.Duration) time.Duration {
	return time.Duration(float64(grace) * c.KillWindowFactor)
}
