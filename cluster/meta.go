package cluster

import (
	"fmt"
	"maps"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Role is what a member does in the ring.
type Role string

// Roles of ring members.
const (
	// RoleCoordinator is the member that accepts dataflows and places nodes.
	RoleCoordinator Role = "coordinator"
	// RoleDaemon is the per-machine member that runs nodes.
	RoleDaemon Role = "daemon"
)

// MaxMetaSize is the largest encoded Meta that memberlist carries.
const MaxMetaSize = memberlist.MetaMaxSize

// Meta is the metadata every member gossips about itself. It is encoded with
// msgpack and must fit in MaxMetaSize bytes.
type Meta struct {
	// Role is the member's role.
	Role Role `codec:"r,omitempty"`
	// Machine is the machine id the member runs on.
	Machine string `codec:"m,omitempty"`
	// ControlAddr is the host:port of the member's control listener.
	ControlAddr string `codec:"c,omitempty"`
	// BootEpoch changes on every process start; it tells a restart from a
	// refutation.
	BootEpoch int64 `codec:"b,omitempty"`
	// Version is the software version of the member.
	Version string `codec:"v,omitempty"`
	// Labels are free-form placement labels.
	Labels map[string]string `codec:"l,omitempty"`
	// Leaving is set before a graceful leave so that peers can tell a leave
	// from a death.
	Leaving bool `codec:"x,omitempty"`
}

// MetaTooLargeError is returned when a Meta does not fit in MaxMetaSize.
type MetaTooLargeError struct {
	// Size is the encoded size in bytes.
	Size int
	// Limit is the largest size allowed.
	Limit int
}

func (e *MetaTooLargeError) Error() string {
	return fmt.Sprintf("member meta is %d bytes encoded, the limit is %d: shorten labels, version or addresses", e.Size, e.Limit)
}

func newMsgpackHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.Canonical = true
	h.RawToString = true
	return h
}

// Encode returns the msgpack encoding of m, or a *MetaTooLargeError if it is
// larger than MaxMetaSize. The encoding is canonical (map keys sorted) so
// equal metas encode to equal bytes.
func (m Meta) Encode() ([]byte, error) {
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, newMsgpackHandle()).Encode(&m); err != nil {
		return nil, fmt.Errorf("encode member meta: %w", err)
	}
	if len(buf) > MaxMetaSize {
		return nil, &MetaTooLargeError{Size: len(buf), Limit: MaxMetaSize}
	}
	return buf, nil
}

// DecodeMeta decodes a Meta produced by Meta.Encode. Empty input decodes to
// the zero Meta.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, nil
	}
	if err := codec.NewDecoderBytes(b, newMsgpackHandle()).Decode(&m); err != nil {
		return Meta{}, fmt.Errorf("decode member meta (%d bytes): %w", len(b), err)
	}
	return m, nil
}

// clone returns a copy of m that shares no map with it.
func (m Meta) clone() Meta {
	if m.Labels != nil {
		m.Labels = maps.Clone(m.Labels)
	}
	return m
}
