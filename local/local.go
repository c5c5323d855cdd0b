package local

import (
	"context"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/waitgroup"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/coordinator"
	"github.com/doractl/doractl/daemon"
	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/proto"
)

const (
	// DaemonName is the in-process daemon's name, and its state subfolder.
	DaemonName = "run"
	// Machine is the machine id of the in-process daemon and coordinator.
	Machine = "local"

	registerTimeout = 10 * time.Second
	startTimeout    = 45 * time.Second
	// logDrainTimeout bounds the wait for the log streams to deliver the last lines once
	// every node has an outcome.
	logDrainTimeout = 3 * time.Second
	// shutdownTimeout bounds the wait for the daemon and coordinator to return.
	shutdownTimeout = 10 * time.Second
)

// Config configures Run.
type Config struct {
	// Path is the descriptor file; relative node paths resolve against its folder.
	Path string
	// Name is the dataflow name ("" = generated).
	Name string
	// NodeAddr is the listener dynamic nodes connect to (host:port).
	NodeAddr string
	// StateDir is the root of the daemon's state: node logs are kept in
	// StateDir/run/dataflows/<id>/<node>.log.
	StateDir string
	// Grace is the grace period of stops (Stop event, then SIGTERM, then SIGKILL).
	Grace time.Duration
	// StopAfter stops the dataflow gracefully after this long (0 = run until it ends).
	StopAfter time.Duration
	// Force, when cancelled, kills every node at once. Optional.
	Force context.Context
	// Logs returns where a node's output goes, line by line as the node writes it; nil
	// (or a nil writer) does not stream it. The node log files are kept either way.
	Logs func(node string) io.Writer
	// Events receives progress messages (started, stopping, a node failed). Optional.
	Events func(Event)
	// Logger receives the coordinator's and daemon's logs.
	Logger hclog.Logger
	// Version is reported by the in-process servers.
	Version string
}

// Event is a progress report of Run.
type Event struct {
	Kind EventKind
	// Dataflow is the dataflow's state when the event happened (zero before the start).
	Dataflow proto.Dataflow
	// Node is the node concerned (EventNodeFailed).
	Node proto.NodeInfo
	// Force is set for EventStopping of a forced stop.
	Force bool
	// NodeAddr and LogDir are set for EventStarted.
	NodeAddr, LogDir string
	// Ignored lists, for EventStarted, the deploy sections that were not followed since
	// every node runs here, one entry per machine or label set, e.g.
	// `machine robot-a (nodes camera, lidar)`.
	Ignored []string
	// Dynamic lists, for EventStarted, the dynamic nodes (started by hand, they connect
	// to NodeAddr).
	Dynamic []string
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventStarted    EventKind = iota + 1 // every node is spawned or waiting
	EventStopping                        // a stop was sent (Force: a forced one)
	EventNodeFailed                      // a node failed
)

// Run starts the dataflow and waits until every node has an outcome. Cancelling ctx stops
// the dataflow gracefully (as StopAfter does); cancelling cfg.Force kills its nodes. It
// returns the dataflow's final state; an error only when it could not be run or its end
// could not be awaited, never for node failures (see the returned status and nodes).
func Run(ctx context.Context, cfg Config) (proto.Dataflow, error) {
	text, err := os.ReadFile(cfg.Path)
	if err != nil {
		return proto.Dataflow{}, fmt.Errorf("read dataflow: %w", err)
	}
	desc, err := dataflow.Parse(text, cfg.Path)
	if err != nil {
		return proto.Dataflow{}, err
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return proto.Dataflow{}, fmt.Errorf("resolve %s: %w", cfg.Path, err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	force := cfg.Force
	if force == nil {
		force = context.Background()
	}
	emit := cfg.Events
	if emit == nil {
		emit = func(Event) {}
	}

	srv, err := coordinator.New(&coordinator.Config{
		ControlAddr:  "",
		DaemonAddr:   "",
		Gossip:       false,
		Name:         "coordinator",
		Machine:      Machine,
		OneMachine:   true,
		DataDir:      "",
		DefaultGrace: cfg.Grace,
		Logger:       log.Named("coordinator"),
		Version:      cfg.Version,
	})
	if err != nil {
		return proto.Dataflow{}, fmt.Errorf("in-process coordinator: %w", err)
	}
	srvCtx, srvCancel := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx) }()
	defer func() {
		srvCancel()
		waitDone(srvDone, shutdownTimeout, log, "coordinator")
	}()

	d, err := daemon.New(&daemon.Config{
		Name:    DaemonName,
		Machine: Machine,
		Version: cfg.Version,
		Dial: func(context.Context) (net.Conn, error) {
			a, b := net.Pipe()
			go srv.AcceptDaemon(b)
			return a, nil
		},
		NoControlListener:     true,
		NodeListenAddr:        cfg.NodeAddr,
		Gossip:                false,
		StateDir:              cfg.StateDir,
		DefaultGrace:          cfg.Grace,
		ForceCtx:              force,
		NodeParentDeathSignal: true,
		Remote:                daemon.NoRemote{}, // one daemon: no peers
		Logger:                log.Named("daemon"),
	})
	if err != nil {
		return proto.Dataflow{}, fmt.Errorf("in-process daemon: %w", err)
	}
	dCtx, dCancel := context.WithCancel(context.Background())
	dDone := make(chan error, 1)
	go func() { dDone <- d.Run(dCtx) }()
	// The daemon goes first: with every node ended its shutdown is immediate, and its last
	// statuses reach the coordinator before that stops.
	defer func() {
		dCancel()
		waitDone(dDone, shutdownTimeout, log, "daemon")
	}()

	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	err = srv.WaitDaemon(rctx, DaemonName)
	cancel()
	if err != nil {
		return proto.Dataflow{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	rep, err := srv.StartDataflow(sctx, proto.APIStartRequest{
		Name: cfg.Name, Descriptor: string(text), Path: abs, WorkingDir: filepath.Dir(abs),
	})
	cancel()
	if err != nil {
		return proto.Dataflow{}, err
	}
	df, err := srv.Dataflow(rep.ID)
	if err != nil {
		return proto.Dataflow{}, err
	}

	logCtx, logCancel := context.WithCancel(context.Background())
	defer logCancel()
	var logs sync.WaitGroup
	if cfg.Logs != nil {
		for _, n := range df.Nodes {
			w := cfg.Logs(n.ID)
			if w == nil {
				continue
			}
			logs.Add(1)
			go func(node string) {
				defer logs.Done()
				if err := srv.StreamLogs(logCtx, rep.ID, node, true, w); err != nil {
					log.Debug("log stream ended", "node", node, "error", err)
				}
			}(n.ID)
		}
	}
	var dynamic []string
	for _, n := range desc.Nodes {
		if n.IsDynamic() {
			dynamic = append(dynamic, n.ID)
		}
	}
	emit(Event{Kind: EventStarted, Dataflow: df, NodeAddr: d.NodeListenAddr(),
		LogDir: filepath.Join(d.StateDir(), "dataflows", rep.ID), Ignored: ignoredDeploys(desc), Dynamic: dynamic})

	df, err = await(ctx, srv, rep.ID, cfg, force, emit, log)
	if err != nil {
		return df, err
	}
	if !waitgroup.Within(&logs, logDrainTimeout) {
		log.Debug("log streams still open after the dataflow ended")
	}
	logCancel()
	return df, nil
}

// await waits until every node of the dataflow has an outcome, sending the stops asked
// for on the way.
func await(ctx context.Context, srv *coordinator.Server, id string, cfg Config, force context.Context, emit func(Event), log hclog.Logger) (proto.Dataflow, error) {
	var stopAfter <-chan time.Time
	if cfg.StopAfter > 0 {
		t := time.NewTimer(cfg.StopAfter)
		defer t.Stop()
		stopAfter = t.C
	}
	done, forced := ctx.Done(), force.Done()
	stopped := false
	stop := func(df proto.Dataflow, force bool) {
		stopped = true
		emit(Event{Kind: EventStopping, Dataflow: df, Force: force})
		go func() {
			// The stop ends by itself: at its deadline the coordinator escalates and answers.
			rep, err := srv.StopDataflow(context.Background(), id, proto.APIStopRequest{Grace: cfg.Grace.String(), Force: force})
			switch {
			case err != nil:
				log.Warn("stop failed", "dataflow", id, "error", err)
			case rep.Error != "":
				log.Warn("stop ended uncleanly", "dataflow", id, "error", rep.Error)
			}
		}()
	}
	reported := map[string]bool{}
	for {
		changed := srv.DataflowChanged(id)
		df, err := srv.Dataflow(id)
		if err != nil {
			return df, err
		}
		for _, n := range df.Nodes {
			if n.Status == proto.NodeFailed && !reported[n.ID] {
				reported[n.ID] = true
				emit(Event{Kind: EventNodeFailed, Dataflow: df, Node: n})
			}
		}
		if df.Status == proto.DataflowFinished || df.Status == proto.DataflowFailed {
			return df, nil
		}
		select {
		case <-changed:
		case <-stopAfter:
			stopAfter = nil
			if !stopped {
				stop(df, false)
			}
		case <-done:
			done = nil
			if !stopped {
				stop(df, false)
			}
		case <-forced:
			forced = nil
			stop(df, true)
		}
	}
}

// waitDone waits for a server's Run to return.
func waitDone(ch <-chan error, timeout time.Duration, log hclog.Logger, what string) {
	select {
	case err := <-ch:
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("in-process server ended with an error", "server", what, "error", err)
		}
	case <-time.After(timeout):
		log.Warn("in-process server did not shut down in time", "server", what, "timeout", timeout)
	}
}

// ignoredDeploys describes the deploy sections of desc that name a machine or labels, one
// entry per distinct target with its nodes, in node order.
func ignoredDeploys(desc *dataflow.Descriptor) []string {
	var order []string
	nodes := map[string][]string{}
	for _, n := range desc.Nodes {
		dep := n.Deploy
		if dep.Machine == "" && len(dep.Labels) == 0 {
			dep = desc.Deploy
		}
		var parts []string
		if dep.Machine != "" {
			parts = append(parts, "machine "+dep.Machine)
		}
		if len(dep.Labels) > 0 {
			labels := make([]string, 0, len(dep.Labels))
			for k, v := range dep.Labels {
				labels = append(labels, k+"="+v)
			}
			slices.Sort(labels)
			parts = append(parts, "labels "+strings.Join(labels, ","))
		}
		if len(parts) == 0 {
			continue
		}
		key := strings.Join(parts, " ")
		if _, ok := nodes[key]; !ok {
			order = append(order, key)
		}
		nodes[key] = append(nodes[key], n.ID)
	}
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = fmt.Sprintf("%s (nodes %s)", k, strings.Join(nodes[k], ", "))
	}
	return out
}
