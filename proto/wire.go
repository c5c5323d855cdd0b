package proto

import (
	"encoding/binary"
	"errors"
	"math"
)

// Hand-written msgpack for the message hot path (envelopes, Output, Input). It writes the
// same bytes as the codec with newHandle for these types, and reads what any msgpack
// encoder writes for them; anything else makes the reader give up with errSlowPath and
// the codec decodes the frame instead.

// errSlowPath says a frame is valid for the codec but not the shape the fast path reads.
var errSlowPath = errors.New("not on the msgpack fast path")

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n < 1<<16:
		return append(b, 0xde, byte(n>>8), byte(n))
	}
	return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 256:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// appendBinHeader writes the header of a byte slice (nil writes msgpack nil).
func appendBinHeader(b []byte, data []byte) []byte {
	if data == nil {
		return append(b, 0xc0)
	}
	return appendBinLen(b, len(data))
}

// appendBinLen writes the header of a bin value of n bytes.
func appendBinLen(b []byte, n int) []byte {
	switch {
	case n < 256:
		return append(b, 0xc4, byte(n))
	case n < 1<<16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	}
	return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v > math.MaxInt8 && v <= math.MaxInt16, v < math.MinInt8 && v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v > math.MaxInt16 && v <= math.MaxInt32, v < math.MinInt16 && v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	case v > math.MaxInt32, v < math.MinInt32:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	case v >= -32:
		return append(b, byte(v))
	}
	return append(b, 0xd0, byte(v))
}

// mpReader reads msgpack values from a byte slice. Byte slices it returns share the
// input's memory.
type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) next(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, errSlowPath
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *mpReader) byte1() (byte, error) {
	p, err := r.next(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// length reads a big-endian length of size bytes.
func (r *mpReader) length(size int) (int, error) {
	p, err := r.next(size)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range p {
		n = n<<8 | uint64(c)
	}
	if n > math.MaxInt32 {
		return 0, errSlowPath
	}
	return int(n), nil
}

// isNil consumes a msgpack nil if one is next.
func (r *mpReader) isNil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// mapLen reads a map header; nil reads as an empty map.
func (r *mpReader) mapLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		return r.length(2)
	case c == 0xdf:
		return r.length(4)
	case c == 0xc0:
		return 0, nil
	}
	return 0, errSlowPath
}

// raw reads a str or bin value (nil reads as nil).
func (r *mpReader) raw() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = r.length(1)
	case c == 0xda || c == 0xc5:
		n, err = r.length(2)
	case c == 0xdb || c == 0xc6:
		n, err = r.length(4)
	case c == 0xc0:
		return nil, nil
	default:
		return nil, errSlowPath
	}
	if err != nil {
		return nil, err
	}
	p, err := r.next(n)
	if err != nil {
		return nil, err
	}
	return p[:n:n], nil
}

func (r *mpReader) str() (string, error) {
	p, err := r.raw()
	return string(p), err
}

// int reads any msgpack integer that fits an int64.
func (r *mpReader) int() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	case 0xc0:
		return 0, nil
	default:
		return 0, errSlowPath
	}
	p, err := r.next(size)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, x := range p {
		u = u<<8 | uint64(x)
	}
	if c >= 0xd0 { // signed: sign-extend
		shift := 64 - 8*size
		return int64(u<<shift) >> shift, nil
	}
	if u > math.MaxInt64 {
		return 0, errSlowPath
	}
	return int64(u), nil
}
