package daemon

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

const (
	// ringJoinTimeout bounds one attempt to join the ring after a registration.
	ringJoinTimeout = 10 * time.Second
	// ringLeaveTimeout bounds the graceful leave at shutdown.
	ringLeaveTimeout = 5 * time.Second
	// destroyLeaveTimeout bounds the leave on destroy: every member is leaving at once,
	// so the leave broadcast soon has nobody left to be sent to and would wait its whole
	// budget.
	destroyLeaveTimeout = time.Second
	// metaUpdateTimeout bounds the wait for a metadata update before joining (it keeps
	// spreading afterwards).
	metaUpdateTimeout = 300 * time.Millisecond
)

// createRing starts this daemon's ring member; it joins the ring after registering.
func (d *Daemon) createRing() error {
	prof, err := cluster.ResolveProfile(d.cfg.Profile, d.cfg.GossipOverrides)
	if err != nil {
		return fmt.Errorf("gossip profile: %w", err)
	}
	cc := cluster.DefaultConfig()
	cc.Name = d.cfg.Name
	cc.BindAddr = d.cfg.GossipBindAddr
	cc.BindPort = d.cfg.GossipPort
	cc.AdvertiseAddr = d.cfg.AdvertiseAddr
	cc.Profile = prof
	cc.SecretKey = d.cfg.SecretKey
	cc.Logger = d.log.Named("ring")
	cc.Meta = cluster.Meta{
		Role:        cluster.RoleDaemon,
		Machine:     d.cfg.Machine,
		ControlAddr: d.ctlAddr,
		BootEpoch:   d.epoch,
		Version:     d.cfg.Version,
		Labels:      d.cfg.Labels,
	}
	r, err := cluster.Create(cc)
	if err != nil {
		return fmt.Errorf("gossip ring: %w", err)
	}
	d.ring = r
	d.advertiseRingHost()
	return nil
}

// advertiseRingHost replaces a loopback control address, guessed because the control
// listener binds every interface and no AdvertiseAddr is set, by the host the ring
// advertises: other machines must be able to reach the control listener.
func (d *Daemon) advertiseRingHost() {
	if d.cfg.AdvertiseAddr != "" || !unspecifiedHost(d.ctlLn.Addr()) {
		return
	}
	host, _, err := net.SplitHostPort(d.ring.Addr())
	if ip := net.ParseIP(host); err != nil || ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		return
	}
	_, port, _ := net.SplitHostPort(d.ctlAddr)
	d.ctlAddr = net.JoinHostPort(host, port)
	m := d.ring.LocalMember().Meta
	m.ControlAddr = d.ctlAddr
	ctx, cancel := context.WithTimeout(d.bg, metaUpdateTimeout)
	defer cancel()
	if err := d.ring.UpdateMeta(ctx, m); err != nil {
		d.log.Debug("control address update still spreading", "error", err)
	}
}

// gossipAddr is the ring member's address ("" without a ring).
func (d *Daemon) gossipAddr() string {
	if d.ring == nil {
		return ""
	}
	return d.ring.Addr()
}

// joinRing joins the ring through the addresses a registration gave, in the background:
// the session never waits on gossip. Joining again after a reconnect is harmless and
// heals the case of a coordinator that restarted with a new ring.
func (d *Daemon) joinRing(reply *proto.RegisterReply) {
	if d.ring == nil {
		return
	}
	seen := map[string]bool{d.ring.Addr(): true}
	var seeds []string
	for _, lists := range [][]string{{reply.CoordinatorGossip}, reply.Seeds, d.cfg.Seeds} {
		for _, s := range lists {
			if s != "" && !seen[s] {
				seen[s] = true
				seeds = append(seeds, s)
			}
		}
	}
	if len(seeds) == 0 {
		d.log.Warn("registered, but no gossip address to join the ring through")
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(d.bg, ringJoinTimeout)
		defer cancel()
		if n, err := d.ring.Join(ctx, seeds); err != nil {
			d.log.Warn("join gossip ring", "seeds", seeds, "error", err)
		} else {
			d.log.Info("joined gossip ring", "seeds", seeds, "answered", n)
		}
	}()
}

// leaveRing leaves the ring gracefully (bounded by timeout) and stops the member.
func (d *Daemon) leaveRing(timeout time.Duration) {
	if d.ring == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := d.ring.Leave(ctx); err != nil {
		d.log.Warn("leave gossip ring", "error", err)
	}
}
