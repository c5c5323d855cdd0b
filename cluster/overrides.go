package cluster

import (
	"errors"
	"fmt"
	"time"
)

// Overrides changes some settings of a profile (the `gossip:` section of a config
// file). A zero field keeps the profile's value.
type Overrides struct {
	// ProbeInterval replaces Profile.ProbeInterval.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// ProbeTimeout replaces Profile.ProbeTimeout.
	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	// IndirectChecks replaces Profile.IndirectChecks.
	IndirectChecks int `yaml:"indirect_checks"`
	// SuspicionMult replaces Profile.SuspicionMult.
	SuspicionMult int `yaml:"suspicion_mult"`
	// SuspicionMaxTimeoutMult replaces Profile.SuspicionMaxTimeoutMult.
	SuspicionMaxTimeoutMult int `yaml:"suspicion_max_timeout_mult"`
	// GossipInterval replaces Profile.GossipInterval.
	GossipInterval time.Duration `yaml:"gossip_interval"`
	// PushPullInterval replaces Profile.PushPullInterval.
	PushPullInterval time.Duration `yaml:"push_pull_interval"`
	// StallGrace replaces Profile.StallGrace.
	StallGrace time.Duration `yaml:"stall_grace"`
}

// IsZero reports whether o changes nothing.
func (o Overrides) IsZero() bool { return o == Overrides{} }

// With returns p with o's non-zero settings applied. The name gets a "+config" suffix
// when anything changed, so logs show the profile is not the built-in one.
func (p Profile) With(o Overrides) (Profile, error) {
	if o.ProbeInterval < 0 || o.ProbeTimeout < 0 || o.GossipInterval < 0 || o.PushPullInterval < 0 || o.StallGrace < 0 {
		return p, errors.New("gossip overrides: durations must be positive")
	}
	if o.IndirectChecks < 0 || o.SuspicionMult < 0 || o.SuspicionMaxTimeoutMult < 0 {
		return p, errors.New("gossip overrides: counts and multipliers must be positive")
	}
	if o.IsZero() {
		return p, nil
	}
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&p.ProbeInterval, o.ProbeInterval)
	setDur(&p.ProbeTimeout, o.ProbeTimeout)
	setDur(&p.GossipInterval, o.GossipInterval)
	setDur(&p.PushPullInterval, o.PushPullInterval)
	setDur(&p.StallGrace, o.StallGrace)
	setInt(&p.IndirectChecks, o.IndirectChecks)
	setInt(&p.SuspicionMult, o.SuspicionMult)
	setInt(&p.SuspicionMaxTimeoutMult, o.SuspicionMaxTimeoutMult)
	if p.ProbeTimeout >= p.ProbeInterval {
		return p, fmt.Errorf("gossip overrides: probe_timeout %s must be shorter than probe_interval %s", p.ProbeTimeout, p.ProbeInterval)
	}
	p.Name += "+config"
	return p, nil
}

// ResolveProfile is ProfileByName followed by With.
func ResolveProfile(name string, o Overrides) (Profile, error) {
	p, err := ProfileByName(name)
	if err != nil {
		return p, err
	}
	return p.With(o)
}
