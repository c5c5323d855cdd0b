package proto

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// newHandle returns the msgpack handle used for every frame. Handles are cheap and
// carry no shared mutable state once configured, but we keep one per Conn anyway.
func newHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.RawToString = true
	h.MapType = reflect.TypeOf(map[string]interface{}(nil))
	return h
}

// Encode marshals v to msgpack.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, newHandle()).Encode(v); err != nil {
		return nil, fmt.Errorf("msgpack encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// Decode unmarshals msgpack data into v (a pointer). The Data of an Output or an Input
// shares data's memory: data must not be modified afterwards.
func Decode(data []byte, v any) error {
	if decodeFast(data, v) {
		return nil
	}
	if err := codec.NewDecoderBytes(data, newHandle()).Decode(v); err != nil {
		return fmt.Errorf("msgpack decode %T: %w", v, err)
	}
	return nil
}
