package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/internal/testutil"
	"github.com/doractl/doractl/proto"
)

// The register reply may fence single nodes (their dataflow goes on elsewhere): those
// are killed as fenced, the rest of the dataflow keeps running.
func TestRegisterReplyFencesSingleNodes(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	spawn(t, f, "df", stubbornNode("s", false), rustNode(50*time.Millisecond))
	f.waitStatus(t, "df", "s", proto.NodeRunning, 10*time.Second)
	f.waitStatus(t, "df", "rust-node", proto.NodeRunning, 10*time.Second)

	f.mu.Lock()
	f.reply = proto.RegisterReply{KillNodes: []proto.RunningNode{{DataflowID: "df", NodeID: "s"}, {DataflowID: "df-unknown", NodeID: "x"}}}
	f.mu.Unlock()
	f.dropLink()
	f.waitRegister(t, 2, 10*time.Second)
	if st := f.waitStatus(t, "df", "s", proto.NodeKilled, 5*time.Second); st.Outcome != outcomeFenced {
		t.Fatalf("fenced node: %+v", st)
	}
	time.Sleep(200 * time.Millisecond)
	if st := f.status("df", "rust-node"); st.Status != proto.NodeRunning {
		t.Fatalf("the other node of the dataflow was touched: %+v", st)
	}
}

// A daemon with a cluster key proves it when registering. A rejected registration is
// logged as one line saying why, and retried after the longest backoff, not at once.
func TestRegisterProvesKeyAndBacksOffWhenRejected(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	cfg.SecretKey = []byte("0123456789abcdef")
	cfg.ReconnectMax = 600 * time.Millisecond
	var logs testutil.SyncBuffer
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "daemon", Level: hclog.Warn, Output: &logs})
	startDaemon(t, f, cfg)
	req := f.waitRegister(t, 1, 5*time.Second)
	if want := proto.RegisterProof(cfg.SecretKey, cfg.Name, req.BootEpoch); !bytes.Equal(req.KeyProof, want) || len(want) == 0 {
		t.Fatalf("key proof %x, want %x", req.KeyProof, want)
	}

	f.mu.Lock()
	f.reject = proto.ErrKeyMismatch
	f.mu.Unlock()
	f.dropLink()
	f.waitRegister(t, 4, 5*time.Second)
	f.mu.Lock()
	times := append([]time.Time(nil), f.regTimes...)
	f.mu.Unlock()
	for i := 2; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 550*time.Millisecond {
			t.Errorf("retry %d after a rejection came after %s, want the longest backoff (600ms)", i, gap)
		}
	}
	want := "coordinator rejected registration: cluster key mismatch (this daemon's --cluster-key differs from the coordinator's)"
	if got := strings.Count(logs.String(), want); got != 1 {
		t.Errorf("rejection logged %d times, want once:\n%s", got, logs.String())
	}
}

// A graceful shutdown announces the leave over the control link after the nodes'
// outcomes, so the coordinator takes the daemon as left before its link resets.
func TestShutdownAnnouncesLeaving(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	d := startDaemon(t, f, testConfig(t, f))
	spawn(t, f, "df", rustNode(20*time.Millisecond))
	f.waitStatus(t, "df", "rust-node", proto.NodeRunning, 10*time.Second)
	d.cancel()
	if err := d.wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Sent before Run returned: at most still in flight.
	var leaves []int
	var before []statusEvent
	testutil.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		leaves = append([]int(nil), f.leaves...)
		before = append([]statusEvent(nil), f.statuses...)
		if len(leaves) != 1 {
			return fmt.Errorf("leaving events: %d, want 1", len(leaves))
		}
		return nil
	})
	stopped := false
	for _, st := range before[:leaves[0]] {
		if st.NodeID == "rust-node" && st.Status == proto.NodeStopped {
			stopped = true
		}
	}
	if !stopped {
		t.Fatalf("the leave was announced before the node's outcome: %+v", before)
	}
}

// With a cluster key, a peer daemon's hello must prove it.
func TestPeerHelloProvesKey(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	cfg := testConfig(t, f)
	cfg.SecretKey = []byte("0123456789abcdef")
	d := startDaemon(t, f, cfg)
	hello := func(key []byte) error {
		nc, err := net.Dial("tcp", d.ControlAddr())
		if err != nil {
			t.Fatal(err)
		}
		conn := proto.NewConn(nc, proto.Options{})
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := proto.DaemonHello{Name: "peer", BootEpoch: 7, Protocol: proto.ProtocolVersion, KeyProof: proto.HelloProof(key, "peer", 7)}
		return conn.Request(ctx, proto.TypeDaemonHello, h, nil)
	}
	if err := hello(cfg.SecretKey); err != nil {
		t.Fatalf("hello with the key: %v", err)
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{{[]byte("fedcba9876543210"), proto.ErrKeyMismatch}, {nil, proto.ErrKeyRequired}} {
		if err := hello(tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hello with key %q: %v, want %q", tc.key, err, tc.want)
		}
	}
}
