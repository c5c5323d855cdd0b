package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestProfileOverrides(t *testing.T) {
	lan, _ := ProfileByName(ProfileLAN)
	same, err := lan.With(Overrides{})
	if err != nil || same != lan {
		t.Fatalf("empty overrides changed the profile: %+v, %v", same, err)
	}
	p, err := ResolveProfile(ProfileLAN, Overrides{ProbeInterval: 2 * time.Second, SuspicionMult: 7, IndirectChecks: 5})
	if err != nil {
		t.Fatal(err)
	}
	if p.ProbeInterval != 2*time.Second || p.SuspicionMult != 7 || p.IndirectChecks != 5 {
		t.Fatalf("overrides not applied: %+v", p)
	}
	if p.ProbeTimeout != lan.ProbeTimeout || p.GossipNodes != lan.GossipNodes || p.Name != "lan+config" {
		t.Fatalf("untouched settings changed: %+v", p)
	}
	if _, err := lan.With(Overrides{ProbeTimeout: 5 * time.Second}); err == nil || !strings.Contains(err.Error(), "probe_timeout") {
		t.Fatalf("probe timeout past the interval accepted: %v", err)
	}
	if g, err := lan.With(Overrides{StallGrace: 12 * time.Second}); err != nil || g.StallGrace != 12*time.Second {
		t.Fatalf("stall grace override: %+v, %v", g, err)
	}
	if _, err := lan.With(Overrides{StallGrace: -time.Second}); err == nil {
		t.Fatal("negative stall grace accepted")
	}
	if _, err := lan.With(Overrides{SuspicionMult: -1}); err == nil {
		t.Fatal("negative multiplier accepted")
	}
	if _, err := ResolveProfile("satellite", Overrides{}); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
