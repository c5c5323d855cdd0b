package daemon

import (
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

func TestGossipJoinAndLeave(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cc := cluster.DefaultConfig()
	cc.Name = "coordinator-" + t.Name()
	cc.BindAddr = "127.0.0.1"
	cc.Meta = cluster.Meta{Role: cluster.RoleCoordinator}
	cc.Logger = hclog.NewNullLogger()
	coordRing, err := cluster.Create(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer coordRing.Shutdown()
	f.mu.Lock()
	f.reply = proto.RegisterReply{CoordinatorGossip: coordRing.Addr()}
	f.mu.Unlock()

	cfg := testConfig(t, f)
	cfg.Gossip = true
	cfg.Profile = "local"
	cfg.ListenAddr = "0.0.0.0:0"
	d := startDaemon(t, f, cfg)
	reg := f.waitRegister(t, 1, time.Second)
	if reg.GossipAddr == "" || reg.GossipAddr != d.GossipAddr() {
		t.Fatalf("register gossip address %q, daemon's %q", reg.GossipAddr, d.GossipAddr())
	}
	t.Logf("gossip %s control %s", d.GossipAddr(), d.ControlAddr())
	// The control address is one the coordinator can dial.
	ringHost, _, _ := net.SplitHostPort(d.GossipAddr())
	ctlHost, _, _ := net.SplitHostPort(d.ControlAddr())
	if ip := net.ParseIP(ringHost); !ip.IsLoopback() && ctlHost != ringHost {
		t.Fatalf("control address %s, want the ring's host %s", d.ControlAddr(), ringHost)
	}
	if c, err := net.DialTimeout("tcp", d.ControlAddr(), 2*time.Second); err != nil {
		t.Fatalf("control listener unreachable at %s: %v", d.ControlAddr(), err)
	} else {
		_ = c.Close()
	}

	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		m, ok := coordRing.Member(cfg.Name)
		if !ok {
			return fmt.Errorf("daemon not in the coordinator's ring view: %+v", coordRing.Members())
		}
		if m.Meta.Role != cluster.RoleDaemon || m.Meta.BootEpoch != d.BootEpoch() || m.Meta.ControlAddr != d.ControlAddr() {
			return fmt.Errorf("daemon meta %+v", m.Meta)
		}
		return nil
	})

	d.cancel()
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if _, ok := coordRing.Member(cfg.Name); ok {
			return fmt.Errorf("daemon still in the ring after a graceful shutdown")
		}
		return nil
	})
}
