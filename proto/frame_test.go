package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte("ab"), 1<<16)} {
		if err := WriteFrame(&buf, p, 0); err != nil {
			t.Fatalf("write %d bytes: %v", len(p), err)
		}
		got, err := ReadFrame(&buf, 0)
		if err != nil {
			t.Fatalf("read %d bytes: %v", len(p), err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("round trip of %d bytes gave %d bytes", len(p), len(got))
		}
	}
	if _, err := ReadFrame(&buf, 0); !errors.Is(err, io.EOF) {
		t.Fatalf("empty stream: want io.EOF, got %v", err)
	}
}

func TestFrameOversized(t *testing.T) {
	var buf bytes.Buffer
	err := WriteFrame(&buf, make([]byte, 101), 100)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("write oversized: want ErrFrameTooLarge, got %v", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("oversized frame wrote %d bytes", buf.Len())
	}
	// A declared length over the limit is refused before any allocation.
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 0xFFFFFFFF)
	_, err = ReadFrame(bytes.NewReader(hdr[:]), 1<<20)
	var fse *FrameSizeError
	if !errors.As(err, &fse) || fse.Size != 0xFFFFFFFF || fse.Max != 1<<20 {
		t.Fatalf("read oversized: want FrameSizeError, got %v", err)
	}
}

func TestFrameTruncated(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("hello world"), 0); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	for _, n := range []int{1, 3, 4, 8, len(full) - 1} {
		_, err := ReadFrame(bytes.NewReader(full[:n]), 0)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated to %d bytes: want io.ErrUnexpectedEOF, got %v", n, err)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			if _, err := ReadFrame(r, 1<<16); err != nil {
				return
			}
		}
	})
}
