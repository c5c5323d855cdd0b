package cluster

import (
	"fmt"
	"time"
)

// EventType is the kind of a membership change.
type EventType int

// Membership changes.
const (
	// MemberJoin: a member became alive (new, or back after being gone).
	MemberJoin EventType = iota + 1
	// MemberLeave: memberlist says the member is gone. That is either a
	// death or a graceful leave; Meta.Leaving tells them apart.
	MemberLeave
	// MemberUpdate: a member's metadata changed.
	MemberUpdate
)

func (t EventType) String() string {
	switch t {
	case MemberJoin:
		return "join"
	case MemberLeave:
		return "leave"
	case MemberUpdate:
		return "update"
	default:
		return fmt.Sprintf("EventType(%d)", int(t))
	}
}

// Member is a ring member as this process sees it.
type Member struct {
	// Name is the member's unique name.
	Name string
	// Addr is the member's gossip address, host:port.
	Addr string
	// Meta is the member's decoded metadata.
	Meta Meta
}

// Event is a membership change.
type Event struct {
	// Type is the kind of change.
	Type EventType
	// Member is the member as of the change. For MemberLeave, Meta is the
	// last metadata seen, with Leaving set if the member announced its
	// leave either in its metadata or with a direct notice.
	Member Member
	// Time is when this process observed the change.
	Time time.Time
}

// push hands an event to the consumer without ever blocking: delegates run
// inside memberlist's locks and packet loop. When the buffer is full the
// event is dropped and counted; consumers resynchronise with Members.
func (r *Ring) push(ev Event) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if r.evClosed {
		return
	}
	select {
	case r.events <- ev:
	default:
		n := r.eventsDropped.Add(1)
		now := time.Now().UnixNano()
		last := r.lastDropLog.Load()
		if now-last >= int64(time.Second) && r.lastDropLog.CompareAndSwap(last, now) {
			r.logger.Warn("member event dropped: consumer is slow, resync with Members()",
				"event", ev.Type.String(), "member", ev.Member.Name, "dropped_total", n)
		}
	}
}

// closeEvents closes the Events channel; later pushes are discarded.
func (r *Ring) closeEvents() {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if !r.evClosed {
		r.evClosed = true
		close(r.events)
	}
}
