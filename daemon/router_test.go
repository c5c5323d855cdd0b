package daemon

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/proto"
)

// pair is a producer "p" (output "out") feeding consumer "c" (input "in", queue size).
func pair(size int) []proto.NodeSpec {
	return []proto.NodeSpec{
		{ID: "p", Outputs: []string{"out"}},
		{ID: "c", Inputs: []proto.InputSpec{{ID: "in", Node: "p", Output: "out", QueueSize: size}}},
	}
}

func TestRouterNeverBlocksOnSlowConsumer(t *testing.T) {
	r := newRouter("df", pair(10), nil, "me", nil, hclog.NewNullLogger())
	rec := newRecorder(true) // every delivery waits for a token
	done := make(chan struct{})
	defer close(done)
	r.attach("c", rec, done)

	const total = 100000
	published := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for i := 0; i < total; i++ {
			r.publish("p", "out", payload(i), proto.Metadata{})
		}
		r.closeOutputs("p", nil)
		published <- time.Since(start)
	}()
	select {
	case took := <-published:
		t.Logf("%d messages published in %s with a stalled consumer", total, took)
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on a consumer that reads nothing")
	}

	// Now let the consumer read: it gets at most the queue (plus the one the sender held
	// when it stalled), the newest messages, then InputClosed.
	go func() {
		for {
			select {
			case rec.gate <- struct{}{}:
			case <-done:
				return
			}
		}
	}()
	var inputs []*proto.Input
	for {
		d := rec.next(t, 5*time.Second)
		if d.typ == proto.TypeInputClosed {
			break
		}
		inputs = append(inputs, d.msg.(*proto.Input))
	}
	if len(inputs) == 0 || len(inputs) > 11 {
		t.Fatalf("consumer got %d messages, want 1..11", len(inputs))
	}
	last := inputs[len(inputs)-1]
	if string(last.Data) != fmt.Sprintf("m%d", total-1) {
		t.Fatalf("last message %s, want the newest m%d (drop oldest)", last.Data, total-1)
	}
	if got := uint64(len(inputs)) + last.Dropped; got != total {
		t.Fatalf("delivered %d + dropped %d = %d, want %d", len(inputs), last.Dropped, got, total)
	}
}

func TestRouterInputClosedAfterData(t *testing.T) {
	r := newRouter("df", pair(10), nil, "me", nil, hclog.NewNullLogger())
	for i := 0; i < 3; i++ {
		r.publish("p", "out", payload(i), proto.Metadata{})
	}
	r.closeOutputs("p", nil)
	if n := r.publish("p", "out", payload(99), proto.Metadata{}); n != 0 {
		t.Fatalf("publish after close delivered to %d inputs", n)
	}
	// The consumer connects late: queued data first, then InputClosed.
	rec := newRecorder(false)
	done := make(chan struct{})
	defer close(done)
	r.attach("c", rec, done)
	for i := 0; i < 3; i++ {
		d := rec.next(t, 2*time.Second)
		in, ok := d.msg.(*proto.Input)
		if !ok || string(in.Data) != fmt.Sprintf("m%d", i) {
			t.Fatalf("event %d: %s %+v, want input m%d", i, d.typ, d.msg, i)
		}
	}
	if d := rec.next(t, 2*time.Second); d.typ != proto.TypeInputClosed || d.msg.(*proto.InputClosed).ID != "in" {
		t.Fatalf("got %s %+v, want InputClosed in", d.typ, d.msg)
	}
}

func TestRouterIgnoresUndeclaredOutput(t *testing.T) {
	r := newRouter("df", pair(10), nil, "me", nil, hclog.NewNullLogger())
	if n := r.publish("p", "other", payload(1), proto.Metadata{}); n != 0 {
		t.Fatalf("undeclared output delivered to %d inputs", n)
	}
	if n := r.publish("p", "out", payload(1), proto.Metadata{}); n != 1 {
		t.Fatalf("declared output delivered to %d inputs, want 1", n)
	}
}

// remoteRecorder is a RemoteSink that counts what it is given.
type remoteRecorder struct {
	outputs chan string
	closed  chan string
}

func (r *remoteRecorder) Output(df, node, output string, data []byte, md proto.Metadata) {
	r.outputs <- node + "/" + output
}

func (r *remoteRecorder) OutputsClosed(df, node string, outputs []string) {
	r.closed <- fmt.Sprintf("%s %v", node, outputs)
}

func TestRouterForwardsToRemoteSink(t *testing.T) {
	rs := &remoteRecorder{outputs: make(chan string, 10), closed: make(chan string, 10)}
	specs := []proto.NodeSpec{{ID: "p", Outputs: []string{"out"}}}
	// Without remote nodes nothing goes to the sink.
	r := newRouter("df", specs, map[string]string{"p": "me"}, "me", rs, hclog.NewNullLogger())
	r.publish("p", "out", payload(1), proto.Metadata{})
	if len(rs.outputs) != 0 {
		t.Fatal("remote sink used by a dataflow without remote nodes")
	}
	r = newRouter("df", specs, map[string]string{"p": "me", "far": "other"}, "me", rs, hclog.NewNullLogger())
	r.publish("p", "out", payload(1), proto.Metadata{})
	r.closeOutputs("p", nil)
	if got := <-rs.outputs; got != "p/out" {
		t.Fatalf("remote sink got %q", got)
	}
	if got := <-rs.closed; got != "p [out]" {
		t.Fatalf("remote sink close %q", got)
	}
}

func TestTimersFeedInputs(t *testing.T) {
	specs := []proto.NodeSpec{{ID: "c", Inputs: []proto.InputSpec{{ID: "tick", Timer: 10 * time.Millisecond, QueueSize: 100}}}}
	r := newRouter("df", specs, nil, "me", nil, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startTimers(ctx, r.timerRoutes())
	testutil.CheckFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if q, _ := r.inbox("c").stats("tick"); q < 3 {
			return fmt.Errorf("%d ticks queued", q)
		}
		return nil
	})
}
