// Package proto holds doractl's wire messages, their msgpack codec, length-prefixed
// framing with a size limit, and a multiplexed request/reply connection with deadlines.
// It imports nothing internal.
package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame is the largest frame accepted by default: big enough for a 4 MB node
// message plus its envelope, small enough that a corrupt length prefix cannot make a
// reader allocate gigabytes.
const DefaultMaxFrame = 64 << 20

// frameHeader is the size of the big-endian length prefix.
const frameHeader = 4

// ErrFrameTooLarge is returned (wrapped in a *FrameSizeError) when a frame exceeds the limit.
var ErrFrameTooLarge = errors.New("frame too large")

// FrameSizeError reports a frame whose declared size is over the limit.
type FrameSizeError struct {
	Size, Max int
}

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the %d-byte limit", e.Size, e.Max)
}

// Unwrap lets errors.Is(err, ErrFrameTooLarge) match.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// WriteFrame writes one length-prefixed frame. It refuses frames over max (0 = DefaultMaxFrame).
func WriteFrame(w io.Writer, payload []byte, max int) error {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	if len(payload) > max {
		return &FrameSizeError{Size: len(payload), Max: max}
	}
	buf := make([]byte, frameHeader+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[frameHeader:], payload)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one length-prefixed frame of at most max bytes (0 = DefaultMaxFrame).
// A stream that ends inside a frame gives io.ErrUnexpectedEOF; a clean end between
// frames gives io.EOF.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame header: %w", err)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > max {
		return nil, &FrameSizeError{Size: n, Max: max}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body (%d bytes): %w", n, err)
	}
	return buf, nil
}
