package proto

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// benchSizes are the payload sizes dora-rs publishes figures for.
var benchSizes = []int{8, 40 << 10, 400 << 10, 4 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func BenchmarkFrameRoundTrip(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			payload := make([]byte, size)
			var buf bytes.Buffer
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := WriteFrame(&buf, payload, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := ReadFrame(&buf, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchPair connects two Conns over a loopback Unix socket, as a node and its daemon.
func benchPair(b *testing.B, a, o Options) (*Conn, *Conn) {
	b.Helper()
	ln, err := net.Listen("unix", b.TempDir()+"/s")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ca, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cb, ok := <-accepted
	if !ok {
		b.Fatal("accept failed")
	}
	x, y := NewConn(ca, a), NewConn(cb, o)
	b.Cleanup(func() { x.Close(); y.Close() })
	return x, y
}

func BenchmarkConnRequest(b *testing.B) {
	server := Options{OnRequest: func(_ context.Context, _ string, body Body) (any, error) {
		var r echoReq
		if err := body.Decode(&r); err != nil {
			return nil, err
		}
		return echoReply{Text: r.Text}, nil
	}}
	c, _ := benchPair(b, Options{}, server)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var rep echoReply
		if err := c.Request(ctx, "echo", &echoReq{Text: "ping"}, &rep); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnNotify sends node Output events and waits until the peer has decoded
// each one: the first hop of a node message.
func BenchmarkConnNotify(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			got := make(chan int, 1)
			peer := Options{OnEvent: func(_ string, body Body) {
				var out Output
				if err := body.Decode(&out); err != nil {
					b.Error(err)
				}
				got <- len(out.Data)
			}}
			c, _ := benchPair(b, Options{}, peer)
			msg := &Output{Output: "data", Data: make([]byte, size)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				msg.Metadata.Timestamp = time.Now().UnixNano()
				if err := c.Notify(TypeOutput, msg); err != nil {
					b.Fatal(err)
				}
				if n := <-got; n != size {
					b.Fatalf("peer got %d bytes, want %d", n, size)
				}
			}
		})
	}
}
