package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/coordinator"
	"github.com/doractl/doractl/daemon"
	"github.com/doractl/doractl/proto"
)

// The bench's two daemons: each is named after its machine (the name is also its state
// subfolder). Daemon A is on the coordinator's machine, so nodes without a deploy section
// (the example dataflow) run on it; the cross-daemon rows put the consumer on daemon B.
const (
	daemonA = "bench-a"
	daemonB = "bench-b"
)

// cluster is a coordinator and two daemons in this process, each daemon linked to the
// coordinator by a net.Pipe and to the other by a daemon<->daemon link over real TCP
// (loopback); the nodes they run are real processes.
type cluster struct {
	stateDir string
	cl       *client.Client
	cancel   context.CancelFunc
	done     chan error // one value per server that returned
	servers  int        // the coordinator and the daemons
	// linkQueue is the daemons' RemoteQueueSize: each daemon<->daemon link's send queue.
	linkQueue int
}

// startCluster starts the coordinator (control API on a free loopback port, no gossip,
// memory store, machine bench-a) and the two daemons (machines bench-a and bench-b, each
// with its control listener on a free loopback port, which the other's data link dials),
// and waits until both are registered.
func startCluster(ctx context.Context, stateDir string, log hclog.Logger) (*cluster, error) {
	ccfg := coordinator.DefaultConfig()
	ccfg.ControlAddr = "127.0.0.1:0"
	ccfg.DaemonAddr = ""
	ccfg.Gossip = false
	ccfg.DataDir = ""
	ccfg.Machine = daemonA
	ccfg.Logger = log.Named("coordinator")
	srv, err := coordinator.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	names := []string{daemonA, daemonB}
	daemons := make([]*daemon.Daemon, 0, len(names))
	linkQueue := 0
	for _, name := range names {
		dcfg := daemon.DefaultConfig()
		dcfg.Name = name
		dcfg.Machine = name
		dcfg.Dial = func(context.Context) (net.Conn, error) {
			a, b := net.Pipe()
			srv.AcceptDaemon(a)
			return b, nil
		}
		dcfg.ListenAddr = "127.0.0.1:0"
		dcfg.NodeListenAddr = ""
		dcfg.Gossip = false
		dcfg.StateDir = stateDir
		dcfg.Logger = log.Named(name)
		linkQueue = dcfg.RemoteQueueSize
		d, err := daemon.New(dcfg)
		if err != nil {
			return nil, fmt.Errorf("daemon %s: %w", name, err)
		}
		daemons = append(daemons, d)
	}
	rctx, cancel := context.WithCancel(ctx)
	c := &cluster{stateDir: stateDir, cl: client.New(srv.ControlAddr()), cancel: cancel, done: make(chan error, 1+len(daemons)),
		servers: 1 + len(daemons), linkQueue: linkQueue}
	go func() { c.done <- srv.Run(rctx) }()
	for _, d := range daemons {
		go func() { c.done <- d.Run(rctx) }()
	}
	if err := c.waitDaemons(ctx, len(daemons), 10*time.Second); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *cluster) waitDaemons(ctx context.Context, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		h, err := c.cl.Health(ctx)
		if err == nil && h.Daemons >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d daemons not registered within %s (last error: %v)", n, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// close stops every server and waits (bounded) for them.
func (c *cluster) close() {
	c.cancel()
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	for range c.servers {
		select {
		case <-c.done:
		case <-t.C:
			return
		}
	}
}

// start submits a descriptor whose relative paths resolve in wd.
func (c *cluster) start(ctx context.Context, name, desc, wd string) (string, error) {
	r, err := c.cl.Start(ctx, proto.APIStartRequest{Name: name, Descriptor: desc, Path: name + ".yml", WorkingDir: wd})
	if err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	return r.ID, nil
}

// stop stops a dataflow and fails unless every node ended cleanly.
func (c *cluster) stop(ctx context.Context, id string) error {
	r, err := c.cl.Stop(ctx, id, proto.APIStopRequest{})
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	if r.Error != "" {
		return fmt.Errorf("stop %s: %s", id, r.Error)
	}
	return nil
}

// waitEnded waits until a dataflow is no longer running or stopping.
func (c *cluster) waitEnded(ctx context.Context, id string, within time.Duration) (*proto.Dataflow, error) {
	deadline := time.Now().Add(within)
	for {
		df, err := c.cl.Get(ctx, id)
		if err == nil && df.Status != proto.DataflowRunning && df.Status != proto.DataflowStopping {
			return df, nil
		}
		if time.Now().After(deadline) {
			return df, fmt.Errorf("dataflow %s still running after %s (last error: %v)", id, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logPath is where daemon daemonName writes a node's output (daemon/statedir.go).
func (c *cluster) logPath(daemonName, dfID, nodeID string) string {
	return filepath.Join(c.stateDir, daemonName, "dataflows", dfID, nodeID+".log")
}

// errNotYet says a log does not hold the awaited text yet.
var errNotYet = errors.New("not in the log yet")

// logContains reports whether the log of a node on daemon A holds text.
func (c *cluster) logContains(dfID, nodeID, text string) error {
	b, err := os.ReadFile(c.logPath(daemonA, dfID, nodeID))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errNotYet
		}
		return fmt.Errorf("read log: %w", err)
	}
	if !strings.Contains(string(b), text) {
		return errNotYet
	}
	return nil
}
