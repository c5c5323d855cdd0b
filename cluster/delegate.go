package cluster

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// userMsgLeaving tags a direct leave notice (see Ring.Leave).
const userMsgLeaving byte = 1

// leavingNotice is sent directly to every member before a graceful leave, so
// that peers learn the intent even if they missed the metadata update.
type leavingNotice struct {
	Name string `codec:"n"`
}

// delegate serves the local metadata to memberlist and receives user
// messages. NodeMeta may be called with memberlist's node lock held and
// NotifyMsg runs on the packet loop that also refutes suspicions about us,
// so neither blocks nor calls into memberlist.
type delegate struct {
	r *Ring
}

var _ memberlist.Delegate = delegate{}

// NodeMeta returns the encoded local metadata. Its size was checked against
// MaxMetaSize when it was set; it is never truncated.
func (d delegate) NodeMeta(limit int) []byte {
	d.r.mu.Lock()
	b := d.r.metaBytes
	d.r.mu.Unlock()
	if len(b) > limit {
		// Cannot happen: Create and UpdateMeta reject larger metadata.
		// Returning nothing is better than memberlist's panic.
		d.r.logger.Error("local metadata exceeds memberlist's limit; sending none", "size", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg receives user messages: the direct leave notices.
func (d delegate) NotifyMsg(b []byte) {
	if len(b) == 0 || b[0] != userMsgLeaving {
		return
	}
	var n leavingNotice
	if err := codec.NewDecoderBytes(b[1:], newMsgpackHandle()).Decode(&n); err != nil || n.Name == "" {
		d.r.logger.Debug("ignoring malformed leave notice", "error", err)
		return
	}
	d.r.onLeavingNotice(n.Name)
}

// GetBroadcasts returns nothing: the ring has no broadcasts of its own.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState returns nothing: all state is in the metadata.
func (d delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState does nothing: all state is in the metadata.
func (d delegate) MergeRemoteState(buf []byte, join bool) {}

func encodeLeavingNotice(name string) ([]byte, error) {
	buf := []byte{userMsgLeaving}
	if err := codec.NewEncoderBytes(&buf, newMsgpackHandle()).Encode(&leavingNotice{Name: name}); err != nil {
		return nil, fmt.Errorf("encode leave notice: %w", err)
	}
	return buf, nil
}
