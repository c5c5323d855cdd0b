package coordinator

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"testing"
	"time"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

func TestGossipMembers(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Gossip = true
		c.GossipBindAddr = "127.0.0.1"
		c.GossipPort = 0
		c.Profile = cluster.ProfileLocal
	})
	coordGossip := ts.srv.live.gossipAddr()
	if coordGossip == "" {
		t.Fatal("no gossip address")
	}
	if h, err := ts.cl.Health(context.Background()); err != nil || h.Profile != cluster.ProfileLocal {
		t.Errorf("health %+v, %v: want profile %q", h, err, cluster.ProfileLocal)
	}
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-g", machine: "robot-g"})
	if f.reply.CoordinatorGossip != coordGossip {
		t.Errorf("register reply gossip %q, want %q", f.reply.CoordinatorGossip, coordGossip)
	}

	prof, err := cluster.ProfileByName(cluster.ProfileLocal)
	if err != nil {
		t.Fatal(err)
	}
	rc := cluster.DefaultConfig()
	rc.Name = "daemon-g"
	rc.BindAddr = "127.0.0.1"
	rc.Profile = prof
	rc.Logger = testutil.Logger("daemon-ring")
	rc.Meta = cluster.Meta{Role: cluster.RoleDaemon, Machine: "robot-g", ControlAddr: f.ctrl.Addr().String(), BootEpoch: f.epoch}
	ring, err := cluster.Create(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Shutdown()
	if _, err := ring.Join(ctxT(t, 5*time.Second), []string{coordGossip}); err != nil {
		t.Fatal(err)
	}

	member := func() (proto.Member, error) {
		ms, err := ts.cl.Members(context.Background())
		if err != nil {
			return proto.Member{}, err
		}
		if len(ms) != 2 || ms[0].Role != "coordinator" || ms[0].Address != coordGossip {
			return proto.Member{}, fmt.Errorf("members %+v", ms)
		}
		return ms[1], nil
	}
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		m, err := member()
		if err != nil {
			return err
		}
		if m.Name != "daemon-g" || m.Role != "daemon" || m.Machine != "robot-g" || m.Address != ring.Addr() || m.Status != proto.MemberAlive {
			return fmt.Errorf("daemon member %+v", m)
		}
		return nil
	})

	// Restarted on a new gossip port the ring has not learnt yet: the registered address.
	ts.srv.sessMu.Lock()
	info := ts.srv.known["daemon-g"]
	restarted := info
	restarted.BootEpoch, restarted.GossipAddr = info.BootEpoch+1, "127.0.0.1:9"
	ts.srv.known["daemon-g"] = restarted
	ts.srv.sessMu.Unlock()
	if m, err := member(); err != nil || m.Address != "127.0.0.1:9" {
		t.Errorf("restarted daemon listed at %q (%v), want its registered address", m.Address, err)
	}
	ts.srv.sessMu.Lock()
	ts.srv.known["daemon-g"] = info
	ts.srv.sessMu.Unlock()

	if err := ring.Leave(ctxT(t, 5*time.Second)); err != nil {
		t.Logf("leave: %v", err)
	}
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		m, err := member()
		if err != nil {
			return err
		}
		if m.Status != proto.MemberLeft {
			return fmt.Errorf("daemon member %s (%s), want left", m.Status, m.Reason)
		}
		return nil
	})
}
