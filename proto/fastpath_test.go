package proto

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

func fastBytes(t *testing.T, v any) []byte {
	t.Helper()
	p, err := encodeParts(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(append([]byte(nil), p.pre...), p.data...), p.post...)
}

func TestFastPathMatchesCodec(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 70000)
	vals := []any{
		&Output{Output: "random", Data: []byte("12345678"), Metadata: Metadata{Timestamp: 1764753000000000000}},
		&Output{Output: "o", Metadata: Metadata{Timestamp: -5, Parameters: map[string]string{"k": "v"}}},
		&Output{Output: string(bytes.Repeat([]byte("x"), 40)), Data: big, Metadata: Metadata{Timestamp: math.MinInt64}},
		&Output{Data: []byte{}, Metadata: Metadata{Timestamp: 200}},
		&Input{ID: "in", Data: make([]byte, 300), Dropped: 70000, Metadata: Metadata{Timestamp: 40000}},
		&Input{ID: "i", Dropped: math.MaxUint32 + 1, Metadata: Metadata{Timestamp: -200, Parameters: map[string]string{}}},
		&Input{ID: string(bytes.Repeat([]byte("y"), 300)), Data: big, Metadata: Metadata{Timestamp: -40000}},
	}
	for i, v := range vals {
		want, err := Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		got := fastBytes(t, v)
		if !bytes.Equal(got, want) {
			t.Errorf("value %d: fast encoding differs from the codec's\nfast  % x\ncodec % x", i, head(got), head(want))
		}
		// Each side decodes what the other wrote.
		for _, enc := range [][]byte{got, want} {
			out := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if !decodeFast(enc, out) {
				t.Fatalf("value %d: fast decoder refused the encoding", i)
			}
			norm(v)
			norm(out)
			if !reflect.DeepEqual(out, v) {
				t.Errorf("value %d: decoded %+v, want %+v", i, head2(out), head2(v))
			}
		}
	}
}

// norm makes empty and nil slices compare equal.
func norm(v any) {
	switch m := v.(type) {
	case *Output:
		if len(m.Data) == 0 {
			m.Data = nil
		}
	case *Input:
		if len(m.Data) == 0 {
			m.Data = nil
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

func head2(v any) any {
	switch m := v.(type) {
	case *Output:
		c := *m
		c.Data = head(c.Data)
		return c
	case *Input:
		c := *m
		c.Data = head(c.Data)
		return c
	}
	return v
}

func TestFastEnvelopeMatchesCodec(t *testing.T) {
	body := []byte{1, 2, 3}
	for _, env := range []envelope{
		{Kind: KindEvent, Type: TypeOutput, Body: body},
		{Kind: KindRequest, ID: 300, Type: "x"},
		{Kind: KindReply, ID: math.MaxUint32 + 7, Type: "logs", Err: "boom", Body: bytes.Repeat(body, 30000)},
	} {
		want, err := Encode(&env)
		if err != nil {
			t.Fatal(err)
		}
		parts := bodyParts{pre: env.Body, isNil: env.Body == nil}
		h, tl := appendFrame(nil, nil, &env, &parts)
		got := append(h[frameHeader:], tl...)
		if !bytes.Equal(got, want) {
			t.Errorf("%+v: fast envelope differs\nfast  % x\ncodec % x", env.Type, head(got), head(want))
		}
		var dec envelope
		if err := fastEnvelope(want, &dec); err != nil {
			t.Fatalf("fast decoder refused the codec's envelope: %v", err)
		}
		if !reflect.DeepEqual(dec, env) {
			t.Errorf("decoded %+v, want %+v", dec.Type, env.Type)
		}
	}
}

func TestFastPathFallsBack(t *testing.T) {
	// A field the fast path does not know: the codec decodes it (and ignores the field).
	type outputPlus struct {
		Output string `codec:"out"`
		Extra  int    `codec:"extra"`
	}
	b, err := Encode(&outputPlus{Output: "o", Extra: 3})
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	if decodeFast(b, &out) {
		t.Fatal("fast path accepted an unknown field")
	}
	if err := Decode(b, &out); err != nil || out.Output != "o" {
		t.Fatalf("codec fallback: %v, %+v", err, out)
	}
	if err := Decode([]byte{0x83, 0xa4}, &out); err == nil {
		t.Fatal("truncated data decoded without error")
	}
}
