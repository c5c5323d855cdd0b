package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

func TestRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	_, err = New(addr).Health(context.Background())
	want := "cannot reach coordinator at " + addr + ": connection refused (is it running? try doractl up)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("errors.Is(err, ErrUnreachable) is false for %v", err)
	}
	if _, err := New("http://" + addr).List(context.Background()); err == nil || err.Error() != want {
		t.Errorf("with a scheme: %q", err)
	}
}

func TestAPIErrorText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/dataflows" || r.Method != http.MethodPost {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		var req proto.APIStartRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Name != "demo" {
			t.Errorf("start request %+v", req)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(proto.APIError{Error: `dataflow name in use: "demo"`})
	}))
	defer srv.Close()
	_, err := New(srv.URL).Start(context.Background(), proto.APIStartRequest{Name: "demo"})
	if err == nil || err.Error() != `dataflow name in use: "demo"` || StatusOf(err) != http.StatusConflict {
		t.Fatalf("error %v (status %d)", err, StatusOf(err))
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("an API error matches ErrUnreachable")
	}
}

func TestStopHasItsOwnDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a hung coordinator
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, err := New(srv.URL).Stop(context.Background(), "demo", proto.APIStopRequest{Timeout: "100ms"})
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("stop against a hung coordinator: %v", err)
	}
	if elapsed < 5*time.Second || elapsed > 7*time.Second {
		t.Errorf("gave up after %s, want the server timeout + 5s", elapsed)
	}
}

func TestStopTimeout(t *testing.T) {
	cases := []struct {
		req  proto.APIStopRequest
		want time.Duration
	}{
		{proto.APIStopRequest{}, 25 * time.Second},
		{proto.APIStopRequest{Grace: "2s"}, 13 * time.Second},
		{proto.APIStopRequest{Grace: "2s", Timeout: "4s"}, 4 * time.Second},
	}
	for _, c := range cases {
		if got := StopTimeout(c.req); got != c.want {
			t.Errorf("StopTimeout(%+v) = %s, want %s", c.req, got, c.want)
		}
	}
}

func TestLogsStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/dataflows/demo/logs/sink" || r.URL.Query().Get("follow") != "true" || r.URL.Query().Get("tail") != "3" {
			t.Errorf("request %s", r.URL)
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("a\n"))
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte("b\n"))
	}))
	defer srv.Close()
	var buf bytes.Buffer
	if err := New(srv.URL).Logs(context.Background(), "demo", "sink", 3, true, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "a\nb\n" {
		t.Errorf("logs %q", buf.String())
	}
}

func TestDefaultAddr(t *testing.T) {
	t.Setenv(EnvAddr, "")
	if got := DefaultAddr(); got != "127.0.0.1:6012" {
		t.Errorf("default %q", got)
	}
	t.Setenv(EnvAddr, "10.1.2.3:7000")
	if got := New("").Addr(); got != "10.1.2.3:7000" {
		t.Errorf("from env %q", got)
	}
	if got := New("http://h:1/").Addr(); got != "h:1" {
		t.Errorf("addr %q", got)
	}
}

func TestLogsEndedByDaemonDeath(t *testing.T) {
	end := "\n" + proto.LogsEndMarker + `daemon "daemon-a" confirmed dead since 12:00:01 (control port refuses connections) --` + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("a\n" + end))
	}))
	defer srv.Close()
	var buf bytes.Buffer
	err := New(srv.URL).Logs(context.Background(), "demo", "sink", 0, true, &buf)
	var le *LogsEndedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), `daemon "daemon-a" confirmed dead since 12:00:01`) ||
		err.Error() != `log stream of demo/sink ended: daemon "daemon-a" confirmed dead since 12:00:01 (control port refuses connections)` {
		t.Fatalf("error %v", err)
	}
	if buf.String() != "a\n"+end {
		t.Errorf("the end line was not copied: %q", buf.String())
	}
}

func TestNotACoordinator(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/v1/health" {
			_, _ = w.Write([]byte("<html><body>welcome</body></html>"))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html><body><h1>Not Found</h1></body></html>"))
	}))
	defer srv.Close()
	c := New(srv.URL)
	want := c.Addr() + " does not look like a doractl coordinator (HTTP 404)"
	if _, err := c.List(context.Background()); err == nil || err.Error() != want || StatusOf(err) != http.StatusNotFound {
		t.Errorf("error %v, want %q", err, want)
	}
	if err := c.Logs(context.Background(), "demo", "sink", 0, false, &bytes.Buffer{}); err == nil || err.Error() != want {
		t.Errorf("logs error %v, want %q", err, want)
	}
	want200 := c.Addr() + " does not look like a doractl coordinator (HTTP 200)"
	if _, err := c.Health(context.Background()); err == nil || err.Error() != want200 {
		t.Errorf("health error %v, want %q", err, want200)
	}
}

// A coordinator that goes away mid-request (its process killed) is a lost connection,
// not an unexplained EOF.
func TestConnectionLostMidRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		_, _ = c.Read(buf) // the request arrives; the server dies before answering
		_ = c.Close()
	}()
	_, err = New(ln.Addr().String()).Stop(context.Background(), "demo", proto.APIStopRequest{Grace: "1s"})
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "lost the connection to the coordinator at "+ln.Addr().String()) ||
		errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v", err)
	}
}

// An empty name is refused before any request: it would make another URL.
func TestEmptyRefRefused(t *testing.T) {
	c := New("127.0.0.1:1") // never dialled
	if _, err := c.Get(context.Background(), ""); err == nil || err.Error() != "no dataflow given: its name is empty" {
		t.Errorf("get: %v", err)
	}
	if _, err := c.Stop(context.Background(), " ", proto.APIStopRequest{}); err == nil || !strings.Contains(err.Error(), "no dataflow given") {
		t.Errorf("stop: %v", err)
	}
	if err := c.Logs(context.Background(), "df", "", 0, false, io.Discard); err == nil || err.Error() != "no node given: its name is empty" {
		t.Errorf("logs: %v", err)
	}
}
