package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

// Config configures a Daemon. Start from DefaultConfig.
type Config struct {
	// Name is the daemon's member name in the ring and the name of its state subfolder.
	Name string
	// Machine is the machine id used for placement.
	Machine string
	// Labels are advertised to the coordinator for placement.
	Labels map[string]string
	// Version is reported at registration.
	Version string

	// CoordinatorAddr is the coordinator's daemon listener (host:port).
	CoordinatorAddr string
	// Dial, when set, replaces dialing CoordinatorAddr (in-process runs use net.Pipe).
	Dial func(ctx context.Context) (net.Conn, error)

	// ListenAddr is the daemon's own TCP listener: the coordinator probes it to tell a dead
	// process (connection refused) from a slow one; peer daemons dial it for daemon<->daemon links.
	ListenAddr string
	// NoControlListener binds no ListenAddr: for a lone in-process daemon (doractl run)
	// that needs no probes and no daemon<->daemon links. Requires Gossip off.
	NoControlListener bool
	// AdvertiseAddr is the host advertised for ListenAddr when it binds every interface.
	AdvertiseAddr string
	// NodeListenAddr is the TCP listener dynamic nodes connect to; "" disables it.
	NodeListenAddr string

	// Gossip enables the membership ring; in-process runs turn it off.
	Gossip bool
	// GossipBindAddr and GossipPort are the ring's bind address; port 0 picks a free one.
	GossipBindAddr string
	GossipPort     int
	// Profile names the ring's timing profile (lan, wan, local, flaky).
	Profile string
	// GossipOverrides changes some of the profile's settings (config file `gossip:`).
	GossipOverrides cluster.Overrides
	// SecretKey encrypts gossip when set (16, 24 or 32 bytes).
	SecretKey []byte
	// Seeds are extra gossip addresses to join besides the ones the coordinator gives.
	Seeds []string

	// StateDir is the root of the daemon's state; the daemon uses StateDir/<Name>/ for node
	// logs, its node socket, its pid file and the record of the nodes it runs.
	StateDir string

	// DefaultGrace is the grace period of stops that give none (and of shutdown on ctx).
	DefaultGrace time.Duration
	// KillWindowFactor sizes the window between SIGTERM and SIGKILL as a fraction of the
	// grace period, when a stop gives no KillAfter.
	KillWindowFactor float64

	// ReconnectMin and ReconnectMax bound the exponential backoff between coordinator dials.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// ForceCtx, when cancelled, makes the daemon kill every node at once (SIGKILL) instead of
	// waiting for grace periods: the CLI cancels it on a second signal. Optional.
	ForceCtx context.Context

	// NodeParentDeathSignal makes the kernel SIGKILL every spawned node process when the
	// daemon process dies, even by kill -9 (Linux PR_SET_PDEATHSIG; see pdeath.go). For
	// in-process runs (doractl run), where nodes must not outlive the CLI. Grandchildren a
	// node starts itself are not covered.
	NodeParentDeathSignal bool

	// Remote carries outputs of local nodes to subscribers on other daemons. Nil: the
	// daemon's own daemon<->daemon links (to the peers' ListenAddr); NoRemote{}: none.
	Remote RemoteSink
	// RemoteQueueSize bounds the send queue of each daemon<->daemon link, in messages;
	// when it is full the oldest message is dropped, the producer never waits.
	RemoteQueueSize int

	// Logger receives the daemon's logs.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() *Config {
	machine, err := os.Hostname()
	if err != nil || machine == "" {
		machine = "localhost" // a hostname-less machine still needs a machine id
	}
	return &Config{
		// One daemon per machine: named after it.
		Name: "daemon-" + machine,
		// Placement by host name.
		Machine: machine,
		// No placement labels.
		Labels: nil,
		// The CLI sets the build's version.
		Version: "dev",
		// A coordinator on this machine, on dora's daemon port.
		CoordinatorAddr: fmt.Sprintf("127.0.0.1:%d", proto.DefaultDaemonPort),
		// Dial CoordinatorAddr over TCP.
		Dial: nil,
		// Any free port on every interface.
		ListenAddr: "0.0.0.0:0",
		// Bind it.
		NoControlListener: false,
		// The ring's host when gossip runs, else 127.0.0.1.
		AdvertiseAddr: "",
		// dora's dynamic-node port, reachable from this machine only.
		NodeListenAddr: fmt.Sprintf("127.0.0.1:%d", proto.DefaultNodePort),
		// Join the membership ring.
		Gossip: true,
		// Gossip on every interface...
		GossipBindAddr: "0.0.0.0",
		// ...on a free port, sent to the coordinator at registration.
		GossipPort: 0,
		// The LAN timing profile.
		Profile: "lan",
		// The profile as built in.
		GossipOverrides: cluster.Overrides{},
		// Gossip in clear text.
		SecretKey: nil,
		// Only the addresses the coordinator gives.
		Seeds: nil,
		// $XDG_STATE_HOME/doractl, else ~/.local/state/doractl.
		StateDir: defaultStateRoot(),
		// dora's default stop grace.
		DefaultGrace: 10 * time.Second,
		// SIGKILL half the grace after SIGTERM, as dora.
		KillWindowFactor: 0.5,
		// The first retry is quick...
		ReconnectMin: 100 * time.Millisecond,
		// ...and retries are never further apart than this.
		ReconnectMax: 5 * time.Second,
		// Grace periods are only cut short by Force.
		ForceCtx: nil,
		// Nodes outlive a daemon crash; the next daemon kills them as orphans.
		NodeParentDeathSignal: false,
		// Daemon<->daemon links, dialed on demand.
		Remote: nil,
		// A few seconds of a 100 Hz output per peer while a link is down.
		RemoteQueueSize: defaultRemoteQueueSize,
		// Info and above to stderr.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "daemon", Level: hclog.Info}),
	}
}

// defaultStateRoot follows the XDG base directory spec for state files.
func defaultStateRoot() string {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "doractl")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "doractl")
	}
	return filepath.Join(os.TempDir(), "doractl-state")
}

// check fills the fields a caller may have left empty and rejects impossible values.
func (c *Config) check() error {
	d := DefaultConfig()
	if c.Machine == "" {
		c.Machine = d.Machine
	}
	if c.Name == "" {
		c.Name = "daemon-" + c.Machine
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.CoordinatorAddr == "" && c.Dial == nil {
		return errors.New("daemon config: CoordinatorAddr or Dial is required")
	}
	if c.ListenAddr == "" {
		c.ListenAddr = d.ListenAddr
	}
	if c.NoControlListener && c.Gossip {
		return errors.New("daemon config: NoControlListener requires Gossip off (the ring advertises the control address)")
	}
	if c.Profile == "" {
		c.Profile = d.Profile
	}
	if c.GossipBindAddr == "" {
		c.GossipBindAddr = d.GossipBindAddr
	}
	if c.StateDir == "" {
		c.StateDir = d.StateDir
	}
	if c.DefaultGrace <= 0 {
		c.DefaultGrace = d.DefaultGrace
	}
	if c.KillWindowFactor <= 0 {
		c.KillWindowFactor = d.KillWindowFactor
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = d.ReconnectMin
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(d.ReconnectMax, c.ReconnectMin)
	}
	if c.RemoteQueueSize <= 0 {
		c.RemoteQueueSize = d.RemoteQueueSize
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return nil
}

// killWindow is the time between SIGTERM and SIGKILL for a grace period.
func (c *Config) killWindow(grace time.Duration) time.Duration {
	w := time.Duration(float64(grace) * c.KillWindowFactor)
	if w < 100*time.Millisecond {
		w = 100 * time.Millisecond // give SIGTERM a moment even with a tiny grace
	}
	return w
}
