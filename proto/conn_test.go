package proto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func pipePair(t *testing.T, a, b Options) (*Conn, *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ca, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cb := <-accepted
	x, y := NewConn(ca, a), NewConn(cb, b)
	t.Cleanup(func() { x.Close(); y.Close() })
	return x, y
}

type echoReq struct {
	Text  string        `codec:"text"`
	Sleep time.Duration `codec:"sleep"`
}

type echoReply struct {
	Text string `codec:"text"`
}

func TestRequestReplyAndErrors(t *testing.T) {
	server := Options{OnRequest: func(ctx context.Context, typ string, body Body) (any, error) {
		var r echoReq
		if err := body.Decode(&r); err != nil {
			return nil, err
		}
		if typ == "fail" {
			return nil, fmt.Errorf("refused %q", r.Text)
		}
		if typ == "panic" {
			panic("boom")
		}
		return echoReply{Text: strings.ToUpper(r.Text)}, nil
	}}
	client, _ := pipePair(t, Options{}, server)
	ctx := context.Background()
	var rep echoReply
	if err := client.Request(ctx, "echo", echoReq{Text: "hi"}, &rep); err != nil || rep.Text != "HI" {
		t.Fatalf("echo: %v %+v", err, rep)
	}
	err := client.Request(ctx, "fail", echoReq{Text: "x"}, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != `refused "x"` {
		t.Fatalf("fail: want RemoteError, got %v", err)
	}
	if err := client.Request(ctx, "panic", echoReq{}, nil); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panic: want a panicked error, got %v", err)
	}
	// The connection survives a handler panic.
	if err := client.Request(ctx, "echo", echoReq{Text: "again"}, &rep); err != nil || rep.Text != "AGAIN" {
		t.Fatalf("echo after panic: %v %+v", err, rep)
	}
}

// A handler that blocks must not stop pings, events or other replies: the read loop never
// waits on a handler.
func TestBusyHandlerDoesNotBlockReadLoop(t *testing.T) {
	release := make(chan struct{})
	events := make(chan string, 10)
	server := Options{
		OnRequest: func(ctx context.Context, typ string, body Body) (any, error) {
			if typ == "slow" {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return echoReply{Text: typ}, nil
		},
		OnEvent: func(typ string, body Body) { events <- typ },
	}
	client, _ := pipePair(t, Options{}, server)
	defer close(release)
	slowDone := make(chan error, 1)
	go func() { slowDone <- client.Request(context.Background(), "slow", nil, nil) }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := client.Ping(ctx); err != nil {
			t.Fatalf("ping %d while a handler is busy: %v", i, err)
		}
		var rep echoReply
		if err := client.Request(ctx, "fast", nil, &rep); err != nil || rep.Text != "fast" {
			t.Fatalf("fast request while a handler is busy: %v", err)
		}
	}
	if err := client.Notify("ev", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e != "ev" {
			t.Fatalf("event %q", e)
		}
	case <-ctx.Done():
		t.Fatal("event not delivered while a handler is busy")
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow request returned early: %v", err)
	default:
	}
}

func TestRequestDeadline(t *testing.T) {
	server := Options{OnRequest: func(ctx context.Context, typ string, body Body) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	client, _ := pipePair(t, Options{RequestTimeout: 100 * time.Millisecond}, server)
	start := time.Now()
	err := client.Request(context.Background(), "hang", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("request waited %s past a 100ms default deadline", el)
	}
}

func TestPeerCloseFailsPending(t *testing.T) {
	var once sync.Once
	got := make(chan struct{})
	server := Options{OnRequest: func(ctx context.Context, typ string, body Body) (any, error) {
		once.Do(func() { close(got) })
		<-ctx.Done()
		return nil, nil
	}}
	client, srv := pipePair(t, Options{}, server)
	errc := make(chan error, 1)
	go func() { errc <- client.Request(context.Background(), "hang", nil, nil) }()
	<-got
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending request not failed when the peer closed")
	}
	select {
	case <-client.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client conn not done after peer close")
	}
}

func TestIdleTimeoutClosesSilentLink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(3 * time.Second) // a peer that never speaks
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, Options{IdleTimeout: 200 * time.Millisecond})
	select {
	case <-c.Done():
		if !strings.Contains(c.Err().Error(), "nothing received") {
			t.Fatalf("idle close reason: %v", c.Err())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("silent link not closed by IdleTimeout")
	}
}

func TestOversizedRequestRefusedConnStaysUp(t *testing.T) {
	server := Options{OnRequest: func(ctx context.Context, typ string, body Body) (any, error) { return nil, nil }}
	client, _ := pipePair(t, Options{MaxFrame: 1024}, server)
	err := client.Request(context.Background(), "big", echoReq{Text: strings.Repeat("x", 4096)}, nil)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("want ErrFrameTooLarge, got %v", err)
	}
	if err := client.Request(context.Background(), "small", nil, nil); err != nil {
		t.Fatalf("conn unusable after an oversized frame was refused: %v", err)
	}
}

func TestOversizedIncomingFrameClosesWithReason(t *testing.T) {
	server := Options{MaxFrame: 1024, OnRequest: func(ctx context.Context, typ string, body Body) (any, error) { return nil, nil }}
	client, srv := pipePair(t, Options{}, server)
	_ = client.Notify("big", echoReq{Text: strings.Repeat("x", 4096)})
	select {
	case <-srv.Done():
		if !errors.Is(srv.Err(), ErrFrameTooLarge) {
			t.Fatalf("close reason: %v", srv.Err())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("oversized incoming frame did not close the link")
	}
}
