package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFileGossipOverrides(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fc, err := readConfigFile(write("ok.yml", "gossip:\n  probe_interval: 2s\n  suspicion_mult: 6\n  indirect_checks: 5\n  probe_timeout: 800ms\n  stall_grace: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := fc.Gossip; g.ProbeInterval != 2*time.Second || g.SuspicionMult != 6 || g.IndirectChecks != 5 || g.ProbeTimeout != 800*time.Millisecond || g.StallGrace != 30*time.Second {
		t.Fatalf("parsed %+v", g)
	}
	if fc, err := readConfigFile(write("empty.yml", "")); err != nil || !fc.Gossip.IsZero() {
		t.Fatalf("empty file: %+v %v", fc, err)
	}
	if _, err := readConfigFile(write("typo.yml", "gossip:\n  probe_intervall: 2s\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := readConfigFile(write("bad.yml", "gossip:\n  probe_timeout: 3s\n")); err == nil || !strings.Contains(err.Error(), "probe_timeout") {
		t.Fatalf("probe timeout past the interval: %v", err)
	}
	if _, err := readConfigFile(filepath.Join(dir, "missing.yml")); err == nil {
		t.Fatal("missing file accepted")
	}
}
