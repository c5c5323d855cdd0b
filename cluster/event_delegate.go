package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// eventDelegate receives memberlist's membership notifications. memberlist
// calls it while holding its node lock, so it only copies the node, updates
// the ring's own member table and queues an event: it never blocks and never
// calls back into memberlist.
//
// The *Node it receives always has State == StateAlive, whatever happened
// (memberlist issue #293), so State is never read.
type eventDelegate struct {
	r *Ring
}

var _ memberlist.EventDelegate = eventDelegate{}

// NotifyJoin is called when a member becomes alive.
func (d eventDelegate) NotifyJoin(n *memberlist.Node) {
	r := d.r
	m := r.memberFromNode(n)
	now := time.Now()
	r.mu.Lock()
	r.members[m.Name] = m
	r.seen[m.Name] = seenMember{addr: m.Addr}
	delete(r.leaving, m.Name)
	r.mu.Unlock()
	r.logger.Debug("member joined", "member", m.Name, "addr", m.Addr, "role", m.Meta.Role)
	r.push(Event{Type: MemberJoin, Member: m.cloneMember(), Time: now})
}

// NotifyLeave is called when memberlist declares a member dead or left.
func (d eventDelegate) NotifyLeave(n *memberlist.Node) {
	r := d.r
	m := r.memberFromNode(n)
	now := time.Now()
	r.mu.Lock()
	if r.leaving[m.Name] {
		m.Meta.Leaving = true
	}
	delete(r.members, m.Name)
	r.seen[m.Name] = seenMember{addr: m.Addr, goneAt: now, left: m.Meta.Leaving}
	r.mu.Unlock()
	r.logger.Debug("member gone", "member", m.Name, "addr", m.Addr, "leaving", m.Meta.Leaving)
	r.push(Event{Type: MemberLeave, Member: m.cloneMember(), Time: now})
}

// NotifyUpdate is called when a member's metadata or address changes.
func (d eventDelegate) NotifyUpdate(n *memberlist.Node) {
	r := d.r
	m := r.memberFromNode(n)
	now := time.Now()
	r.mu.Lock()
	if r.leaving[m.Name] {
		m.Meta.Leaving = true
	}
	r.members[m.Name] = m
	r.seen[m.Name] = seenMember{addr: m.Addr}
	r.mu.Unlock()
	r.logger.Debug("member updated", "member", m.Name, "addr", m.Addr, "leaving", m.Meta.Leaving)
	r.push(Event{Type: MemberUpdate, Member: m.cloneMember(), Time: now})
}

// memberFromNode copies what the ring needs out of a memberlist node. It must
// be called while memberlist guarantees the node is not being modified, i.e.
// inside a delegate callback.
func (r *Ring) memberFromNode(n *memberlist.Node) Member {
	m := Member{Name: n.Name, Addr: n.Address()}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		r.logger.Warn("member has undecodable metadata", "member", n.Name, "addr", m.Addr, "error", err)
	}
	m.Meta = meta
	return m
}

func (m Member) cloneMember() Member {
	m.Meta = m.Meta.clone()
	return m
}
