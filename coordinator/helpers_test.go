package coordinator

import (
	"context"
	"github.com/doractl/doractl/internal/testutil"
	"testing"
	"time"

	"github.com/doractl/doractl/client"
)

// testServer is a coordinator serving on loopback ports, without gossip.
type testServer struct {
	srv    *Server
	cl     *client.Client
	cancel context.CancelFunc
	done   chan error
}

func testConfig() *Config {
	cfg := DefaultConfig()
	cfg.ControlAddr = "127.0.0.1:0"
	cfg.DaemonAddr = "127.0.0.1:0"
	cfg.Gossip = false
	cfg.DataDir = ""
	cfg.Machine = "coordinator-host"
	cfg.Logger = testutil.Logger("coordinator")
	return cfg
}

// startServer runs a coordinator until the test ends; mod adjusts its config.
func startServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, cl: client.New(srv.ControlAddr()).WithKey(cfg.SecretKey), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(func() { ts.shutdown(t) })
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := ts.cl.Health(context.Background())
		return err
	})
	return ts
}

// shutdown cancels the server and waits for Run to return.
func (ts *testServer) shutdown(t *testing.T) {
	t.Helper()
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		ts.done <- nil
	case <-time.After(10 * time.Second):
		t.Errorf("Run did not return within 10s of its context ending")
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
