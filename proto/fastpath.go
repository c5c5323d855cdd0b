package proto

import "encoding/binary"

// bodyParts is an encoded message body in three pieces written one after the other: the
// payload of an Output or Input travels as data, never copied into an encode buffer.
type bodyParts struct {
	pre, data, post []byte
	isNil           bool // no body at all (msgpack nil)
}

func (p *bodyParts) len() int { return len(p.pre) + len(p.data) + len(p.post) }

// encodeParts encodes a message body: Output and Input by hand around their data, any
// other value with the codec.
func encodeParts(v any) (bodyParts, error) {
	switch m := v.(type) {
	case nil:
		return bodyParts{isNil: true}, nil
	case *Output:
		pre := appendBinHeader(append(make([]byte, 0, 16), 0x83, 0xa4, 'd', 'a', 't', 'a'), m.Data)
		post := appendStr(appendMetadata(appendStr(make([]byte, 0, 64), "md"), &m.Metadata), "out")
		return bodyParts{pre: pre, data: m.Data, post: appendStr(post, m.Output)}, nil
	case *Input:
		pre := appendBinHeader(append(make([]byte, 0, 16), 0x84, 0xa4, 'd', 'a', 't', 'a'), m.Data)
		post := appendUint(appendStr(make([]byte, 0, 64), "dropped"), m.Dropped)
		post = appendStr(appendStr(post, "id"), m.ID)
		return bodyParts{pre: pre, data: m.Data, post: appendMetadata(appendStr(post, "md"), &m.Metadata)}, nil
	}
	b, err := Encode(v)
	if err != nil {
		return bodyParts{}, err
	}
	return bodyParts{pre: b}, nil
}

func appendMetadata(b []byte, md *Metadata) []byte {
	b = appendStr(append(b, 0x82), "params")
	if md.Parameters == nil {
		b = append(b, 0xc0)
	} else {
		b = appendMapHeader(b, len(md.Parameters))
		for k, v := range md.Parameters {
			b = appendStr(appendStr(b, k), v)
		}
	}
	return appendInt(appendStr(b, "ts"), md.Timestamp)
}

// appendFrame lays out one whole frame of env around body: the length prefix, the
// envelope up to its body, the body's pre piece (in head), and the rest of the envelope
// after the body's post piece (in tail). env.Body is ignored.
func appendFrame(head, tail []byte, env *envelope, body *bodyParts) (h, t []byte) {
	start := len(head)
	head = append(head, 0, 0, 0, 0, 0x85, 0xa1, 'b')
	if body.isNil {
		head = append(head, 0xc0)
	} else {
		head = appendBinLen(head, body.len())
	}
	head = append(head, body.pre...)
	tail = append(tail, body.post...)
	tail = appendStr(append(tail, 0xa1, 'e'), env.Err)
	tail = appendUint(append(tail, 0xa1, 'i'), env.ID)
	tail = appendUint(append(tail, 0xa1, 'k'), uint64(env.Kind))
	tail = appendStr(append(tail, 0xa1, 't'), env.Type)
	n := len(head) - start - frameHeader + len(body.data) + len(tail)
	binary.BigEndian.PutUint32(head[start:], uint32(n))
	return head, tail
}

// decodeEnvelope reads a frame's envelope; its Body shares the frame's memory.
func decodeEnvelope(frame []byte, env *envelope) error {
	if err := fastEnvelope(frame, env); err == nil {
		return nil
	}
	*env = envelope{}
	return Decode(frame, env)
}

func fastEnvelope(frame []byte, env *envelope) error {
	r := mpReader{b: frame}
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := r.raw()
		if err != nil {
			return err
		}
		switch string(k) {
		case "b":
			env.Body, err = r.raw()
		case "e":
			env.Err, err = r.str()
		case "i":
			var v int64
			v, err = r.int()
			env.ID = uint64(v)
		case "k":
			var v int64
			v, err = r.int()
			env.Kind = Kind(v)
		case "t":
			var t []byte
			t, err = r.raw()
			env.Type = internType(t)
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
	}
	if r.off != len(frame) {
		return errSlowPath
	}
	return nil
}

// internType returns the node message types without allocating.
func internType(t []byte) string {
	switch string(t) {
	case TypeOutput:
		return TypeOutput
	case TypeInput:
		return TypeInput
	}
	return string(t)
}

// decodeFast decodes Output and Input by hand, their Data sharing data's memory. It
// reports false for other types and for anything it does not read: the codec decodes
// those.
func decodeFast(data []byte, v any) bool {
	r := mpReader{b: data}
	var err error
	switch m := v.(type) {
	case *Output:
		if err = r.output(m); err != nil {
			*m = Output{}
		}
	case *Input:
		if err = r.input(m); err != nil {
			*m = Input{}
		}
	default:
		return false
	}
	return err == nil && r.off == len(data)
}

func (r *mpReader) output(m *Output) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := r.raw()
		if err != nil {
			return err
		}
		switch string(k) {
		case "data":
			m.Data, err = r.raw()
		case "md":
			err = r.metadata(&m.Metadata)
		case "out":
			m.Output, err = r.str()
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *mpReader) input(m *Input) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := r.raw()
		if err != nil {
			return err
		}
		switch string(k) {
		case "data":
			m.Data, err = r.raw()
		case "dropped":
			var v int64
			v, err = r.int()
			m.Dropped = uint64(v)
		case "id":
			m.ID, err = r.str()
		case "md":
			err = r.metadata(&m.Metadata)
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *mpReader) metadata(md *Metadata) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := r.raw()
		if err != nil {
			return err
		}
		switch string(k) {
		case "ts":
			md.Timestamp, err = r.int()
		case "params":
			err = r.params(md)
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *mpReader) params(md *Metadata) error {
	if r.isNil() {
		md.Parameters = nil
		return nil
	}
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	md.Parameters = make(map[string]string, n)
	for range n {
		k, err := r.str()
		if err != nil {
			return err
		}
		v, err := r.str()
		if err != nil {
			return err
		}
		md.Parameters[k] = v
	}
	return nil
}
