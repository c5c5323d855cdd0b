package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// stopMode is how a fake daemon answers a stop.
type stopMode int

const (
	stopCooperative stopMode = iota // ack, then report every node stopped
	stopSilent                      // ack, then report nothing
	stopDeaf                        // never ack (a link that carries nothing back)
)

// fakeDaemon speaks the daemon side of the coordinator protocol from the test: it
// registers, acks spawns and stops, and reports node statuses.
type fakeDaemon struct {
	t       *testing.T
	name    string
	machine string
	labels  map[string]string
	epoch   int64
	key     []byte // cluster key the registration proves (nil: none)
	mode    stopMode
	// failSpawn makes spawn requests fail with this error text.
	failSpawn string
	// hangSpawn makes spawn requests never answer (until the link closes).
	hangSpawn bool

	ctrl  net.Listener // the advertised control port
	reply proto.RegisterReply

	mu      sync.Mutex
	conn    *proto.Conn
	nodes   map[string]map[string]string // dataflow -> node -> status
	spawns  []proto.SpawnRequest
	stops   []proto.StopRequest
	kills   []proto.KillRequest
	deaths  []proto.DaemonDead
	destroy int
	logs    map[string][]byte // "df/node" -> log
	// logsOpen makes logs requests long-poll and never report the end of the log.
	logsOpen bool
	// logsGrow is appended to every log after each logs request (a live log).
	logsGrow string
	wrap     func(net.Conn) net.Conn
}

type fakeOpts struct {
	name, machine string
	labels        map[string]string
	mode          stopMode
	failSpawn     string
	hangSpawn     bool
	epoch         int64
	running       []proto.RunningNode
	key           []byte
	// wrap, when set, wraps the link's socket (e.g. to freeze it).
	wrap func(net.Conn) net.Conn
}

// newFakeDaemon listens on a control port and registers with the coordinator.
func newFakeDaemon(t *testing.T, daemonAddr string, o fakeOpts) *fakeDaemon {
	t.Helper()
	f := newUnregisteredFake(t, o)
	f.register(daemonAddr, o.running)
	return f
}

// newRejectedFake is a fake daemon whose registration must fail: it returns the error.
func newRejectedFake(t *testing.T, daemonAddr string, o fakeOpts) (*fakeDaemon, error) {
	t.Helper()
	f := newUnregisteredFake(t, o)
	err := f.tryRegister(daemonAddr, o.running)
	if err == nil {
		t.Fatalf("fake daemon %s: registration accepted, want it rejected", f.name)
	}
	return f, err
}

// newUnregisteredFake listens on a control port; nothing is sent yet.
func newUnregisteredFake(t *testing.T, o fakeOpts) *fakeDaemon {
	t.Helper()
	if o.machine == "" {
		o.machine = o.name
	}
	if o.epoch == 0 {
		o.epoch = time.Now().UnixNano()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake daemon control listener: %v", err)
	}
	f := &fakeDaemon{
		t: t, name: o.name, machine: o.machine, labels: o.labels, epoch: o.epoch, mode: o.mode, failSpawn: o.failSpawn, hangSpawn: o.hangSpawn,
		key: o.key, wrap: o.wrap, ctrl: ln, nodes: map[string]map[string]string{}, logs: map[string][]byte{},
	}
	go f.serveControl()
	t.Cleanup(f.close)
	return f
}

// serveControl accepts probe connections on the control port and holds them.
func (f *fakeDaemon) serveControl() {
	for {
		c, err := f.ctrl.Accept()
		if err != nil {
			return
		}
		go func() {
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					_ = c.Close()
					return
				}
			}
		}()
	}
}

// register dials the coordinator and sends the register request.
func (f *fakeDaemon) register(addr string, running []proto.RunningNode) {
	f.t.Helper()
	if err := f.tryRegister(addr, running); err != nil {
		f.t.Fatalf("fake daemon %s: register: %v", f.name, err)
	}
}

// tryRegister dials the coordinator and sends the register request.
func (f *fakeDaemon) tryRegister(addr string, running []proto.RunningNode) error {
	f.t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		f.t.Fatalf("fake daemon %s: dial %s: %v", f.name, addr, err)
	}
	if f.wrap != nil {
		nc = f.wrap(nc)
	}
	conn := proto.NewConn(nc, proto.Options{KeepAlive: 200 * time.Millisecond, OnRequest: f.handle})
	f.mu.Lock()
	f.conn = conn
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := proto.RegisterRequest{
		Name: f.name, Machine: f.machine, ControlAddr: f.ctrl.Addr().String(), BootEpoch: f.epoch,
		Version: "test", Labels: f.labels, Running: running, Protocol: proto.ProtocolVersion,
		KeyProof: proto.RegisterProof(f.key, f.name, f.epoch),
	}
	f.reply = proto.RegisterReply{}
	return conn.Request(ctx, proto.TypeRegister, req, &f.reply)
}

// leave announces a graceful leave over the link, as a daemon shutting down does.
func (f *fakeDaemon) leave(reason string) {
	if err := f.link().Notify(proto.TypeLeaving, proto.Leaving{Reason: reason}); err != nil {
		f.t.Fatalf("fake daemon %s: leaving: %v", f.name, err)
	}
}

// reconnect closes the link (keeping the control port) and registers again.
func (f *fakeDaemon) reconnect(addr string, running []proto.RunningNode) proto.RegisterReply {
	f.t.Helper()
	_ = f.link().Close()
	f.register(addr, running)
	return f.reply
}

// disconnect closes the link but keeps the control port open: the process looks alive.
func (f *fakeDaemon) disconnect() { _ = f.link().Close() }

func (f *fakeDaemon) link() *proto.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn
}

// crash closes the control port, then the link: the process is provably gone.
func (f *fakeDaemon) crash() {
	_ = f.ctrl.Close()
	_ = f.link().Close()
}

func (f *fakeDaemon) close() {
	_ = f.ctrl.Close()
	if c := f.link(); c != nil {
		_ = c.Close()
	}
}

func (f *fakeDaemon) handle(ctx context.Context, typ string, body proto.Body) (any, error) {
	switch typ {
	case proto.TypeSpawn:
		var req proto.SpawnRequest
		if err := body.Decode(&req); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.spawns = append(f.spawns, req)
		if f.hangSpawn {
			f.mu.Unlock()
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if f.failSpawn != "" {
			f.mu.Unlock()
			return nil, fmt.Errorf("%s", f.failSpawn)
		}
		if f.nodes[req.DataflowID] == nil {
			f.nodes[req.DataflowID] = map[string]string{}
		}
		for _, n := range req.Nodes {
			f.nodes[req.DataflowID][n.ID] = proto.NodeRunning
		}
		f.mu.Unlock()
		go func() {
			for i, n := range req.Nodes {
				f.report(req.DataflowID, n.ID, proto.NodeRunning, "", 1000+i)
			}
		}()
		return proto.Ack{OK: true}, nil
	case proto.TypeStop:
		var req proto.StopRequest
		if err := body.Decode(&req); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.stops = append(f.stops, req)
		if f.mode == stopDeaf {
			f.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
			return nil, errors.New("deaf daemon")
		}
		var ids []string
		if f.mode == stopCooperative {
			for id, st := range f.nodes[req.DataflowID] {
				if !proto.IsFinal(st) {
					f.nodes[req.DataflowID][id] = proto.NodeStopped
					ids = append(ids, id)
				}
			}
		}
		f.mu.Unlock()
		go func() {
			for _, id := range ids {
				f.report(req.DataflowID, id, proto.NodeStopped, "stopped", 0)
			}
		}()
		return proto.Ack{OK: true}, nil
	case proto.TypeKill:
		var req proto.KillRequest
		if err := body.Decode(&req); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.kills = append(f.kills, req)
		f.mu.Unlock()
		return proto.Ack{OK: true}, nil
	case proto.TypeDaemonDead:
		var req proto.DaemonDead
		if err := body.Decode(&req); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.deaths = append(f.deaths, req)
		f.mu.Unlock()
		return proto.Ack{OK: true}, nil
	case proto.TypeDestroy:
		f.mu.Lock()
		f.destroy++
		f.mu.Unlock()
		return proto.Ack{OK: true}, nil
	case proto.TypeLogs:
		var req proto.LogsRequest
		if err := body.Decode(&req); err != nil {
			return nil, err
		}
		f.mu.Lock()
		key := req.DataflowID + "/" + req.NodeID
		data, open := f.logs[key], f.logsOpen
		if f.logsGrow != "" {
			f.logs[key] = append(append([]byte(nil), data...), f.logsGrow...)
		}
		f.mu.Unlock()
		off := req.Offset
		if off < 0 || off > int64(len(data)) {
			off = 0
		}
		if open && off == int64(len(data)) {
			select {
			case <-time.After(req.Wait):
			case <-ctx.Done():
			}
		}
		return proto.LogsReply{Data: data[off:], Next: int64(len(data)), Ended: !open, Status: proto.NodeFinished}, nil
	}
	return nil, fmt.Errorf("fake daemon: no handler for %q", typ)
}

// report sends a node status event.
func (f *fakeDaemon) report(df, node, status, outcome string, pid int) {
	ns := proto.NodeStatus{DataflowID: df, NodeID: node, Status: status, Outcome: outcome, PID: pid, Time: time.Now()}
	if err := f.link().Notify(proto.TypeNodeStatus, ns); err != nil {
		f.t.Logf("fake daemon %s: report %s/%s %s: %v", f.name, df, node, status, err)
	}
}

func (f *fakeDaemon) setLog(df, node, text string, open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[df+"/"+node] = []byte(text)
	f.logsOpen = open
}

func (f *fakeDaemon) destroyed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.destroy
}

func (f *fakeDaemon) stopRequests() []proto.StopRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.StopRequest(nil), f.stops...)
}

func (f *fakeDaemon) deathNotices() []proto.DaemonDead {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.DaemonDead(nil), f.deaths...)
}

func (f *fakeDaemon) spawnRequests() []proto.SpawnRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.SpawnRequest(nil), f.spawns...)
}

// running lists what the fake runs, as a register request reports it.
func (f *fakeDaemon) running() []proto.RunningNode {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []proto.RunningNode
	for df, nodes := range f.nodes {
		for id, st := range nodes {
			if !proto.IsFinal(st) {
				out = append(out, proto.RunningNode{DataflowID: df, NodeID: id, PID: 1})
			}
		}
	}
	return out
}
