package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestProfiles(t *testing.T) {
	for _, name := range ProfileNames() {
		p, err := ProfileByName(name)
		if err != nil || p.Name != name {
			t.Fatalf("ProfileByName(%q) = %+v, %v", name, p, err)
		}
	}
	def, err := ProfileByName("")
	if err != nil || def.Name != ProfileLAN {
		t.Fatalf("default profile = %+v, %v", def, err)
	}
	if _, err := ProfileByName("satellite"); err == nil || !strings.Contains(err.Error(), "lan, wan, local, flaky") {
		t.Fatalf("unknown profile error = %v", err)
	}

	lan, _ := ProfileByName(ProfileLAN)
	ml := memberlist.DefaultLANConfig()
	if lan.ProbeInterval != ml.ProbeInterval || lan.SuspicionMult != ml.SuspicionMult || lan.GossipNodes != ml.GossipNodes ||
		lan.GossipToTheDeadTime != 10*time.Second || lan.RetransmitMult != 6 {
		t.Errorf("lan profile differs from memberlist's LAN config: %+v", lan)
	}
	flaky, _ := ProfileByName(ProfileFlaky)
	if flaky.SuspicionMult <= lan.SuspicionMult || flaky.IndirectChecks != 5 || flaky.ProbeTimeout <= lan.ProbeTimeout {
		t.Errorf("flaky profile is not more tolerant than lan: %+v", flaky)
	}

	// Stall grace: only where stalls are expected; lan keeps issue-3's freeze bound.
	wan, _ := ProfileByName(ProfileWAN)
	if lan.StallGrace != 0 || flaky.StallGrace != 20*time.Second || wan.StallGrace != 20*time.Second {
		t.Errorf("stall grace lan %s, flaky %s, wan %s", lan.StallGrace, flaky.StallGrace, wan.StallGrace)
	}
	for _, name := range ProfileNames() {
		p, _ := ProfileByName(name)
		want := time.Second
		if p.StallGrace > 0 {
			want = 2 * time.Second
		}
		if p.ConfirmTimeout != want {
			t.Errorf("%s: confirm timeout %s, want %s", name, p.ConfirmTimeout, want)
		}
	}
	// wan detects a vanished member in about probe interval + 8 s, ahead of a
	// 20 s central heartbeat, with a probe timeout for RTTs near a second.
	if got := wan.MinSuspicionTimeout(5); got != 8*time.Second || wan.ProbeTimeout < time.Second || wan.ProbeTimeout >= wan.ProbeInterval {
		t.Errorf("wan: MinSuspicionTimeout(5) = %s, probe timeout %s, interval %s", got, wan.ProbeTimeout, wan.ProbeInterval)
	}

	// A death soon after another: 3 live members and the recent dead one counted
	// (4), so only one of the expected confirmations can come. From the fault to
	// the verdict (the next probe, its timeout, the suspicion, the control-link
	// confirmation) must stay under the heartbeat's median detection, 17.5 s.
	for _, name := range ProfileNames() {
		p, _ := ProfileByName(name)
		if got := p.ProbeInterval + p.ProbeTimeout + p.SuspicionTimeout(4, 1) + p.ConfirmTimeout; got >= 17500*time.Millisecond {
			t.Errorf("%s: a death after a recent death in a ring of 3 takes up to %s", name, got)
		}
	}
	// Waiting 6 * the minimum (WAN's multiplier) took 22.8 s of suspicion alone.
	wanSlow := wan
	wanSlow.SuspicionMaxTimeoutMult = memberlist.DefaultWANConfig().SuspicionMaxTimeoutMult
	if got := wanSlow.SuspicionTimeout(4, 1); got != 22762*time.Millisecond {
		t.Errorf("wan with 6x max SuspicionTimeout(4, 1) = %s", got)
	}
	if got, want := wan.SuspicionTimeout(4, 1), 10952*time.Millisecond; got != want {
		t.Errorf("wan SuspicionTimeout(4, 1) = %s, want %s", got, want)
	}
	if got := wan.SuspicionTimeout(3, 0); got != wan.MinSuspicionTimeout(3) {
		t.Errorf("wan SuspicionTimeout(3, 0) = %s: no confirmations expected in a ring of 3", got)
	}
	// flaky expects 4 confirmations from 6 counted members: 3 live ones and 3 deaths
	// of the last 30 s (LAN's gossip to the dead) waited over 20 s for them.
	if got := flaky.SuspicionTimeout(6, 1); got < 20*time.Second || flaky.GossipToTheDeadTime > 10*time.Second {
		t.Errorf("flaky: SuspicionTimeout(6, 1) = %s, gossip to the dead %s", got, flaky.GossipToTheDeadTime)
	}

	c := memberlist.DefaultLANConfig()
	local, _ := ProfileByName(ProfileLocal)
	local.Apply(c)
	want := memberlist.DefaultLocalConfig()
	if c.ProbeTimeout != want.ProbeTimeout || c.GossipInterval != want.GossipInterval || c.TCPTimeout != want.TCPTimeout ||
		c.DeadNodeReclaimTime != local.DeadNodeReclaimTime || c.IndirectChecks != 3 {
		t.Errorf("Apply(local) gave %+v", c)
	}
	// lan: 4 * max(1, log10(3)) * 1s = 4s for 3 members; 4 * log10(100) = 8s for 100.
	if got := lan.MinSuspicionTimeout(3); got != 4*time.Second {
		t.Errorf("lan MinSuspicionTimeout(3) = %s", got)
	}
	if got := lan.MinSuspicionTimeout(100); got != 8*time.Second {
		t.Errorf("lan MinSuspicionTimeout(100) = %s", got)
	}
}
