package local

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// logSink collects the streamed node output per node.
type logSink struct {
	mu sync.Mutex
	by map[string]*bytes.Buffer
}

type nodeWriter struct {
	s    *logSink
	node string
}

func (w nodeWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.by[w.node].Write(p)
}

func (s *logSink) writer(node string) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.by[node] = &bytes.Buffer{}
	return nodeWriter{s, node}
}

func (s *logSink) text(node string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.by[node]; b != nil {
		return b.String()
	}
	return ""
}

func writeDescriptor(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dataflow.yml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testConfig(t *testing.T, yaml string) Config {
	return Config{
		Path:     writeDescriptor(t, yaml),
		NodeAddr: "127.0.0.1:0",
		StateDir: t.TempDir(),
		Grace:    300 * time.Millisecond,
	}
}

func nodeStatus(df proto.Dataflow, id string) proto.NodeInfo {
	for _, n := range df.Nodes {
		if n.ID == id {
			return n
		}
	}
	return proto.NodeInfo{}
}

// Nodes that end by themselves end the run; their output streams line by line and each
// one's outcome is recorded.
func TestRunEndsWithItsNodes(t *testing.T) {
	sink := &logSink{by: map[string]*bytes.Buffer{}}
	cfg := testConfig(t, `nodes:
  - id: ok
    path: shell
    args: echo hello from ok
  - id: bad
    path: shell
    args: echo going down; exit 3
`)
	cfg.Logs = sink.writer
	var events []EventKind
	var evMu sync.Mutex
	cfg.Events = func(ev Event) {
		evMu.Lock()
		events = append(events, ev.Kind)
		evMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	df, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if df.Status != proto.DataflowFailed {
		t.Fatalf("status %s, want failed: %+v", df.Status, df)
	}
	if n := nodeStatus(df, "ok"); n.Status != proto.NodeFinished {
		t.Errorf("node ok: %+v, want finished", n)
	}
	if n := nodeStatus(df, "bad"); n.Status != proto.NodeFailed || n.Outcome != "failed (exit 3)" {
		t.Errorf("node bad: %+v, want failed (exit 3)", n)
	}
	if got := sink.text("ok"); got != "hello from ok\n" {
		t.Errorf("streamed output of ok: %q", got)
	}
	if got := sink.text("bad"); got != "going down\n" {
		t.Errorf("streamed output of bad: %q", got)
	}
	evMu.Lock()
	defer evMu.Unlock()
	if len(events) < 2 || events[0] != EventStarted || events[len(events)-1] != EventNodeFailed {
		t.Errorf("events %v, want started then node failed", events)
	}
}

// Cancelling ctx stops gracefully (a node that ignores SIGTERM is killed after the grace);
// cancelling Force while that stop waits kills at once.
func TestRunStopAndForce(t *testing.T) {
	const stubborn = `nodes:
  - id: stubborn
    path: shell
    args: trap '' TERM; echo ready; while :; do sleep 0.1; done
`
	run := func(t *testing.T, grace time.Duration, force bool) (proto.Dataflow, time.Duration) {
		cfg := testConfig(t, stubborn)
		cfg.Grace = grace
		sink := &logSink{by: map[string]*bytes.Buffer{}}
		cfg.Logs = sink.writer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fctx, fcancel := context.WithCancel(context.Background())
		defer fcancel()
		cfg.Force = fctx
		stopSent := make(chan time.Time, 1)
		go func() {
			for !strings.Contains(sink.text("stubborn"), "ready") {
				time.Sleep(20 * time.Millisecond)
			}
			stopSent <- time.Now()
			cancel()
			if force {
				time.Sleep(200 * time.Millisecond)
				fcancel()
			}
		}()
		df, err := Run(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-stopSent:
			return df, time.Since(at)
		default:
			t.Fatalf("the run ended before it was stopped: %+v", df)
			return df, 0
		}
	}
	t.Run("graceful", func(t *testing.T) {
		df, el := run(t, 500*time.Millisecond, false)
		if df.Status != proto.DataflowFinished {
			t.Fatalf("status %s (%s), want finished", df.Status, df.Reason)
		}
		if n := nodeStatus(df, "stubborn"); n.Status != proto.NodeKilled {
			t.Errorf("stubborn: %+v, want killed after grace", n)
		}
		if el < 500*time.Millisecond {
			t.Errorf("ended %s after the stop: the grace was not waited for", el)
		}
	})
	t.Run("forced", func(t *testing.T) {
		df, el := run(t, time.Minute, true)
		if !proto.IsFinal(nodeStatus(df, "stubborn").Status) {
			t.Fatalf("stubborn has no outcome: %+v", df)
		}
		if el > 10*time.Second {
			t.Errorf("forced stop took %s", el)
		}
	})
}

// A descriptor error is returned before anything starts.
func TestRunBadDescriptor(t *testing.T) {
	cfg := testConfig(t, "nodes:\n  - id: a\n    bogus: 1\n")
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("no error for an invalid descriptor")
	}
}

// A descriptor written for several machines runs whole on this one; the start event says
// which deploy sections were not followed.
func TestRunIgnoresDeploy(t *testing.T) {
	cfg := testConfig(t, `deploy:
  machine: robot-base
nodes:
  - id: camera
    path: shell
    args: echo camera
    deploy:
      machine: robot-a
  - id: lidar
    path: shell
    args: echo lidar
    _unstable_deploy:
      machine: robot-a
  - id: planner
    path: shell
    args: echo planner
    deploy:
      labels:
        gpu: "true"
  - id: logger
    path: shell
    args: echo logger
`)
	var ignored []string
	cfg.Events = func(ev Event) {
		if ev.Kind == EventStarted {
			ignored = ev.Ignored
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	df, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if df.Status != proto.DataflowFinished {
		t.Fatalf("status %s (%s), want finished", df.Status, df.Reason)
	}
	for _, n := range df.Nodes {
		if n.Status != proto.NodeFinished || n.Machine != Machine {
			t.Errorf("node %s: %s on %q, want finished on %q", n.ID, n.Status, n.Machine, Machine)
		}
	}
	want := []string{"machine robot-a (nodes camera, lidar)", "labels gpu=true (nodes planner)", "machine robot-base (nodes logger)"}
	if strings.Join(ignored, "; ") != strings.Join(want, "; ") {
		t.Fatalf("ignored deploys %q, want %q", ignored, want)
	}
}
