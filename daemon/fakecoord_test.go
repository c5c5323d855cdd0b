package daemon

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/proto"
)

// fakeCoord is an in-test coordinator: it accepts daemon links, answers Register and
// records node status events.
type fakeCoord struct {
	t  testing.TB
	ln net.Listener

	mu        sync.Mutex
	conn      *proto.Conn // latest registered link
	refuse    bool        // close new links at once
	reply     proto.RegisterReply
	registers []proto.RegisterRequest
	regTimes  []time.Time // when each register request arrived
	reject    string      // reject registrations with this error
	leaves    []int       // len(statuses) when each leaving event arrived
	statuses  []statusEvent
	stateDir  string // the daemon's state folder, for reading logs without a link
}

// statusEvent is a NodeStatus and the register count when it arrived.
type statusEvent struct {
	proto.NodeStatus
	session int
}

func newFakeCoord(t testing.TB) *fakeCoord {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCoord{t: t, ln: ln}
	go f.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		if f.conn != nil {
			_ = f.conn.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *fakeCoord) addr() string { return f.ln.Addr().String() }

func (f *fakeCoord) accept() {
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		refuse := f.refuse
		f.mu.Unlock()
		if refuse {
			_ = nc.Close()
			continue
		}
		f.serve(nc)
	}
}

// serve runs the coordinator side of one daemon link.
func (f *fakeCoord) serve(nc net.Conn) {
	var conn *proto.Conn
	ready := make(chan struct{})
	conn = proto.NewConn(nc, proto.Options{
		KeepAlive:   500 * time.Millisecond,
		IdleTimeout: 5 * time.Second,
		OnRequest: func(ctx context.Context, typ string, body proto.Body) (any, error) {
			<-ready
			if typ != proto.TypeRegister {
				return nil, fmt.Errorf("fake coordinator serves no %q", typ)
			}
			var req proto.RegisterRequest
			if err := body.Decode(&req); err != nil {
				return nil, err
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.registers = append(f.registers, req)
			f.regTimes = append(f.regTimes, time.Now())
			if f.reject != "" {
				return nil, fmt.Errorf("%s", f.reject)
			}
			f.conn = conn
			reply := f.reply
			return &reply, nil
		},
		OnEvent: func(typ string, body proto.Body) {
			if typ == proto.TypeLeaving {
				f.mu.Lock()
				f.leaves = append(f.leaves, len(f.statuses))
				f.mu.Unlock()
				return
			}
			if typ != proto.TypeNodeStatus {
				return
			}
			var st proto.NodeStatus
			if err := body.Decode(&st); err != nil {
				return
			}
			f.mu.Lock()
			f.statuses = append(f.statuses, statusEvent{st, len(f.registers)})
			f.mu.Unlock()
		},
	})
	close(ready)
}

// setRefuse makes the fake close (true) or serve (false) new links.
func (f *fakeCoord) setRefuse(v bool) {
	f.mu.Lock()
	f.refuse = v
	f.mu.Unlock()
}

// dropLink closes the current link.
func (f *fakeCoord) dropLink() {
	f.mu.Lock()
	c := f.conn
	f.conn = nil
	f.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// waitRegister waits for the n-th register request.
func (f *fakeCoord) waitRegister(t testing.TB, n int, timeout time.Duration) proto.RegisterRequest {
	t.Helper()
	var req proto.RegisterRequest
	testutil.CheckFor(t, timeout, 10*time.Millisecond, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.registers) < n {
			return fmt.Errorf("%d register requests, waiting for %d", len(f.registers), n)
		}
		req = f.registers[n-1]
		return nil
	})
	return req
}

// request sends a request on the current link.
func (f *fakeCoord) request(typ string, req, resp any) error {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c == nil {
		return fmt.Errorf("no daemon link")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Request(ctx, typ, req, resp)
}

// mustRequest is request that fails the test on error.
func (f *fakeCoord) mustRequest(t testing.TB, typ string, req, resp any) {
	t.Helper()
	if err := f.request(typ, req, resp); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
}

// status returns the latest status of a node ("" status if none yet).
func (f *fakeCoord) status(df, node string) proto.NodeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.statuses) - 1; i >= 0; i-- {
		if s := f.statuses[i]; s.DataflowID == df && s.NodeID == node {
			return s.NodeStatus
		}
	}
	return proto.NodeStatus{}
}

// history lists a node's statuses in arrival order.
func (f *fakeCoord) history(df, node string) []statusEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []statusEvent
	for _, s := range f.statuses {
		if s.DataflowID == df && s.NodeID == node {
			out = append(out, s)
		}
	}
	return out
}

// waitStatus waits until a node's latest status is status and returns it.
func (f *fakeCoord) waitStatus(t testing.TB, df, node, status string, timeout time.Duration) proto.NodeStatus {
	t.Helper()
	var st proto.NodeStatus
	testutil.CheckFor(t, timeout, 10*time.Millisecond, func() error {
		st = f.status(df, node)
		if st.Status != status {
			return fmt.Errorf("node %s: status %q (%s), want %q", node, st.Status, st.Outcome, status)
		}
		return nil
	})
	return st
}

// logs reads a node's whole log through TypeLogs.
func (f *fakeCoord) logs(t testing.TB, df, node string) string {
	t.Helper()
	var rep proto.LogsReply
	f.mustRequest(t, proto.TypeLogs, &proto.LogsRequest{DataflowID: df, NodeID: node, Max: 1 << 20}, &rep)
	return string(rep.Data)
}

// waitLog waits until a node's log contains want.
func (f *fakeCoord) waitLog(t testing.TB, df, node, want string, timeout time.Duration) string {
	t.Helper()
	var text string
	testutil.CheckFor(t, timeout, 50*time.Millisecond, func() error {
		text = f.logs(t, df, node)
		if !strings.Contains(text, want) {
			return fmt.Errorf("log of %s has no %q yet:\n%s", node, want, tail(text, 400))
		}
		return nil
	})
	return text
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// testConfig is a daemon config for tests: no gossip, loopback listeners, a temp state
// folder, short grace and reconnect delays.
func testConfig(t testing.TB, f *fakeCoord) *Config {
	cfg := DefaultConfig()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	cfg.Name, cfg.Machine = "d-"+name, "m-"+name
	cfg.CoordinatorAddr = f.addr()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeListenAddr = ""
	cfg.Gossip = false
	cfg.StateDir = t.TempDir()
	cfg.DefaultGrace = 2 * time.Second
	cfg.ReconnectMin = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	level := hclog.Warn
	if os.Getenv("DORACTL_TEST_DEBUG") != "" {
		level = hclog.Debug
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "daemon", Level: level, Output: os.Stderr})
	return cfg
}

// runningDaemon is a Daemon run by a test.
type runningDaemon struct {
	*Daemon
	cancel context.CancelFunc
	done   chan error
}

// startDaemon runs a daemon until the test ends, and waits for its registration.
func startDaemon(t testing.TB, f *fakeCoord, cfg *Config) *runningDaemon {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rd := &runningDaemon{Daemon: d, cancel: cancel, done: make(chan error, 1)}
	f.mu.Lock()
	f.stateDir = d.StateDir()
	before := len(f.registers)
	f.mu.Unlock()
	go func() { rd.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-rd.done:
			if err != nil {
				t.Errorf("daemon Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop within 30s of its context being cancelled")
		}
		// Even when a test fails, leave no node process behind.
		if killed, _ := killOrphans(filepath.Join(d.StateDir(), nodesFileName), 0, hclog.NewNullLogger()); len(killed) > 0 {
			t.Errorf("node processes still running after the daemon stopped: %+v", killed)
		}
	})
	f.waitRegister(t, before+1, 10*time.Second)
	return rd
}

// wait waits for Run to return.
func (rd *runningDaemon) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-rd.done:
		rd.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("daemon still running after %s", timeout)
		return nil
	}
}

// Node specs of the rust-dataflow example.
func rustNode(tick time.Duration) proto.NodeSpec {
	return proto.NodeSpec{ID: "rust-node", Path: bin("node"),
		Inputs:  []proto.InputSpec{{ID: "tick", Timer: tick, QueueSize: 10}},
		Outputs: []string{"random"}}
}

func statusNode() proto.NodeSpec {
	return proto.NodeSpec{ID: "rust-status-node", Path: bin("status-node"),
		Inputs: []proto.InputSpec{
			{ID: "tick", Timer: 100 * time.Millisecond, QueueSize: 10},
			{ID: "random", Node: "rust-node", Output: "random", QueueSize: 10},
		},
		Outputs: []string{"status"}}
}

func sinkNode(id, path string) proto.NodeSpec {
	return proto.NodeSpec{ID: id, Path: path,
		Inputs: []proto.InputSpec{{ID: "message", Node: "rust-status-node", Output: "status", QueueSize: 10}}}
}

func stubbornNode(id string, child bool) proto.NodeSpec {
	s := proto.NodeSpec{ID: id, Path: bin("ignore-stop")}
	if child {
		s.Env = map[string]string{"STUBBORN_SPAWN_CHILD": "1"}
	}
	return s
}

func exitNode(id string, code int, after time.Duration) proto.NodeSpec {
	return proto.NodeSpec{ID: id, Path: bin("exit-code"), Env: map[string]string{
		"EXIT_CODE": fmt.Sprint(code), "EXIT_AFTER": after.String(),
	}}
}

// spawn sends a SpawnRequest.
func spawn(t testing.TB, f *fakeCoord, df string, nodes ...proto.NodeSpec) {
	t.Helper()
	var ack proto.Ack
	f.mustRequest(t, proto.TypeSpawn, &proto.SpawnRequest{DataflowID: df, Name: df, Nodes: nodes}, &ack)
	if !ack.OK {
		t.Fatalf("spawn %s: ack not OK", df)
	}
}

// gone reports an error while a process still runs (a zombie counts as gone).
func gone(pid int) error {
	if procAlive(pid) {
		return fmt.Errorf("process %d still running", pid)
	}
	return nil
}

// writeFile writes a shell script that exits 0 with the given mode, for spawn tests.
func writeFile(t testing.TB, dir, name string, mode os.FileMode) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeScript writes an executable file with the given text.
func writeScript(t testing.TB, dir, name, text string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
