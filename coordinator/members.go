package coordinator

import (
	"sort"
	"time"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

// members is the ring as the coordinator sees it: every member with the detector's
// verdict, members known once but gone included, the coordinator first. Without gossip
// the members are the daemons that registered.
func (s *Server) members() []proto.Member {
	self := proto.Member{
		Name:    s.cfg.Name,
		Role:    string(cluster.RoleCoordinator),
		Machine: s.cfg.Machine,
		Address: s.live.gossipAddr(),
		Status:  proto.MemberAlive,
		Since:   s.startedAt,
		Version: s.cfg.Version,
	}
	byName := map[string]proto.Member{}
	left := map[string]time.Time{}
	known := s.knownDaemons()
	for _, d := range known {
		if d.LeftAt != nil {
			left[d.Name] = *d.LeftAt
		}
	}
	add := func(m proto.Member) {
		if m.Name == self.Name {
			return
		}
		if _, ok := byName[m.Name]; ok {
			return
		}
		m.Status, m.Since, m.Reason = s.live.state(m.Name)
		if at, ok := left[m.Name]; ok && (m.Status == "" || m.Status == proto.MemberDead) {
			// Recorded as left (now or in a previous run); dead only says its link is gone.
			m.Status, m.Since, m.Reason = proto.MemberLeft, at, "left the cluster"
		}
		if m.Status == "" {
			m.Status = proto.MemberSuspect
			m.Reason = "not heard from since the coordinator started"
		}
		if m.Status == proto.MemberLeft && time.Since(m.Since) > leftForget {
			return
		}
		byName[m.Name] = m
	}
	registered := map[string]daemonInfo{}
	for _, d := range known {
		registered[d.Name] = d
	}
	// ringMember is a ring member as listed; a daemon that registered again since with a
	// new boot epoch (a restart, often on a new gossip port the ring has not learnt yet)
	// shows the address it registered with.
	ringMember := func(m cluster.Member) proto.Member {
		pm := memberOf(m)
		if d, ok := registered[m.Name]; ok && d.BootEpoch != 0 && m.Meta.BootEpoch != d.BootEpoch && d.GossipAddr != "" {
			pm.Address = d.GossipAddr
		}
		return pm
	}
	if s.live.ring != nil {
		for _, m := range s.live.ring.Members() {
			add(ringMember(m))
		}
		s.live.mu.Lock()
		seen := make([]cluster.Member, 0, len(s.live.seen))
		for _, m := range s.live.seen {
			seen = append(seen, m)
		}
		s.live.mu.Unlock()
		for _, m := range seen {
			add(ringMember(m))
		}
	}
	for _, d := range known {
		add(proto.Member{
			Name:    d.Name,
			Role:    string(cluster.RoleDaemon),
			Machine: d.Machine,
			Address: d.GossipAddr,
			Labels:  d.Labels,
			Version: d.Version,
		})
	}
	rest := make([]proto.Member, 0, len(byName))
	for _, m := range byName {
		rest = append(rest, m)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	return append([]proto.Member{self}, rest...)
}

func memberOf(m cluster.Member) proto.Member {
	return proto.Member{
		Name:    m.Name,
		Role:    string(m.Meta.Role),
		Machine: m.Meta.Machine,
		Address: m.Addr,
		Labels:  m.Meta.Labels,
		Version: m.Meta.Version,
	}
}
