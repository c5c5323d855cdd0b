package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/cluster"
	"github.com/doractl/doractl/proto"
)

const (
	// maxEndedDataflows is how many ended dataflows are kept in memory (their statuses are
	// resent after a reconnect, their logs served with Ended); older logs stay on disk.
	maxEndedDataflows = 64
	// shutdownMargin is added to grace and kill window when waiting for the last outcomes.
	shutdownMargin = 5 * time.Second
	// flushTimeout bounds the wait for the last statuses to reach the coordinator.
	flushTimeout = 3 * time.Second
)

// Daemon runs one machine's nodes. Create it with New, then call Run once.
type Daemon struct {
	cfg   *Config
	log   hclog.Logger
	epoch int64  // boot epoch: set once, at New
	dir   string // StateDir/<name>

	bg       context.Context // lives until Close
	bgCancel context.CancelFunc

	lock     *os.File
	pids     *pidStore
	out      *outbox
	ctlLn    net.Listener
	ctlAddr  string
	sockLn   net.Listener
	sockPath string
	nodeLn   net.Listener
	ring     *cluster.Ring
	left     bool // the ring was left

	destroyCh chan time.Duration
	running   atomic.Bool
	closeOnce sync.Once

	mu        sync.Mutex
	dataflows map[string]*dataflow
	links     *links // daemon<->daemon links (nil with Config.Remote set)
	shutting  bool
	sess      *proto.Conn
}

// Run creates a daemon and runs it until ctx is cancelled or the coordinator destroys it.
func Run(ctx context.Context, cfg *Config) error {
	d, err := New(cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// New prepares a daemon: it takes the state folder's lock, kills the nodes a previous life
// of this daemon left running, and binds its listeners (and its ring member when Gossip is
// on). Call Run next, or Close to release everything without running.
func New(cfg *Config) (*Daemon, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	c := *cfg
	if err := c.check(); err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:       &c,
		epoch:     time.Now().UnixNano(),
		dir:       filepath.Join(c.StateDir, safeName(c.Name)),
		destroyCh: make(chan time.Duration, 1),
		dataflows: map[string]*dataflow{},
	}
	d.log = c.Logger.With("daemon", c.Name)
	d.bg, d.bgCancel = context.WithCancel(context.Background())
	d.out = newOutbox(d.log.Named("status"))
	if c.Remote == nil {
		d.links = newLinks(d.bg, &c, d.epoch, d.log.Named("links"))
	}
	if err := d.open(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// open does the fallible part of New.
func (d *Daemon) open() error {
	lock, err := lockStateDir(d.dir)
	if err != nil {
		return err
	}
	d.lock = lock
	nodesFile := filepath.Join(d.dir, nodesFileName)
	killed, err := killOrphans(nodesFile, d.epoch, d.log)
	if err != nil {
		d.log.Warn("orphan cleanup", "error", err)
	}
	if len(killed) > 0 {
		d.log.Warn("killed nodes left running by a previous life of this daemon", "count", len(killed))
	}
	killUnrecorded(socketPath(d.dir), d.epoch, d.log)
	d.pids = newPidStore(nodesFile, d.log)
	if d.cfg.AdvertiseAddr == "" && d.cfg.Dial == nil && unspecifiedIP(d.cfg.GossipBindAddr) {
		// Without an explicit address, advertise the one this machine uses to reach the
		// coordinator: the coordinator and the other daemons can reach it too.
		if ip := routeTo(d.cfg.CoordinatorAddr); ip != "" {
			d.cfg.AdvertiseAddr = ip
		}
	}

	if !d.cfg.NoControlListener {
		if d.ctlLn, err = net.Listen("tcp", d.cfg.ListenAddr); err != nil {
			return fmt.Errorf("control listener on %s: %w", d.cfg.ListenAddr, err)
		}
		d.ctlAddr = advertised(d.ctlLn.Addr(), d.cfg.AdvertiseAddr)
	}

	d.sockPath = socketPath(d.dir)
	_ = os.Remove(d.sockPath) // a socket left by a crash; the lock says it is ours
	if d.sockLn, err = net.Listen("unix", d.sockPath); err != nil {
		return fmt.Errorf("node socket %s: %w", d.sockPath, err)
	}
	_ = os.Chmod(d.sockPath, 0o600)

	if d.cfg.NodeListenAddr != "" {
		if d.nodeLn, err = net.Listen("tcp", d.cfg.NodeListenAddr); err != nil {
			return fmt.Errorf("dynamic node listener on %s: %w", d.cfg.NodeListenAddr, err)
		}
	}
	if d.cfg.Gossip {
		if err := d.createRing(); err != nil {
			return err
		}
	}
	return nil
}

// Run serves until ctx is cancelled or the coordinator sends a destroy request. Either way
// it stops every node (ctx: within DefaultGrace; destroy: within the request's grace),
// reports their outcomes, leaves the ring and returns nil. Cancelling Config.ForceCtx, or
// calling Force, kills the nodes at once instead. Run must be called only once.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("daemon: Run called twice")
	}
	defer d.Close()
	if d.ctlLn != nil {
		go d.serveControl(d.ctlLn)
	}
	go d.serveNodes(d.sockLn)
	if d.nodeLn != nil {
		go d.serveNodes(d.nodeLn)
	}
	go d.out.run(d.bg)
	sessCtx, cancelSess := context.WithCancel(d.bg)
	defer cancelSess()
	go d.runSession(sessCtx)
	if fc := d.cfg.ForceCtx; fc != nil {
		go func() {
			select {
			case <-fc.Done():
				d.log.Warn("forced: killing every node now")
				d.Force()
			case <-d.bg.Done():
			}
		}()
	}
	d.log.Info("daemon running", "machine", d.cfg.Machine, "control_addr", d.ctlAddr,
		"node_addr", d.NodeListenAddr(), "gossip_addr", d.gossipAddr(), "state_dir", d.dir, "epoch", d.epoch)

	var grace time.Duration
	leave, why := ringLeaveTimeout, "shutdown"
	select {
	case <-ctx.Done():
		grace = d.cfg.DefaultGrace
		d.log.Info("shutting down: stopping every node", "grace", grace)
	case grace = <-d.destroyCh:
		if grace <= 0 {
			grace = d.cfg.DefaultGrace
		}
		leave, why = destroyLeaveTimeout, "destroy"
		d.log.Info("destroy: stopping every node", "grace", grace)
	}
	d.shutdown(grace, leave, why)
	cancelSess()
	return nil
}

// shutdown stops every dataflow within grace (plus the kill window), reports the outcomes,
// announces its leave (why) over the control link and leaves the ring within leave.
func (d *Daemon) shutdown(grace, leave time.Duration, why string) {
	d.mu.Lock()
	d.shutting = true
	d.mu.Unlock()
	p := stopPlan{grace: grace, killAfter: d.cfg.killWindow(grace), reason: outcomeForced}
	if fc := d.cfg.ForceCtx; fc != nil && fc.Err() != nil {
		p.force = true
	}
	dfs := d.allDataflows()
	for _, df := range dfs {
		d.stopDataflow(df, p)
	}
	wctx, cancel := context.WithTimeout(d.bg, p.grace+p.killAfter+shutdownMargin)
	for _, df := range dfs {
		if !df.waitEnded(wctx) {
			d.log.Error("nodes without an outcome at shutdown", "dataflow", df.id, "nodes", pendingNodes(df))
		}
	}
	cancel()
	fctx, fcancel := context.WithTimeout(d.bg, flushTimeout)
	if !d.out.flush(fctx) {
		d.log.Warn("some node statuses could not be sent to the coordinator before exit")
	}
	fcancel()
	// The outcomes are sent (in order, on the same link): now the coordinator may take
	// the daemon as left, before its link resets and its port closes.
	d.announceLeaving(why)
	d.leaveRing(leave)
	d.left = true
	d.log.Info("daemon stopped")
}

func pendingNodes(df *dataflow) []string {
	df.mu.Lock()
	defer df.mu.Unlock()
	var out []string
	for _, id := range df.order {
		if !df.nodes[id].final {
			out = append(out, id)
		}
	}
	return out
}

// Close releases the listeners, the ring member and the state folder lock. Run calls it
// when it returns; call it yourself only for a daemon that was never run. Nodes still
// running are left alone (the next daemon with this state folder kills them).
func (d *Daemon) Close() {
	d.closeOnce.Do(func() {
		d.bgCancel()
		for _, ln := range []net.Listener{d.ctlLn, d.sockLn, d.nodeLn} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		if d.sockPath != "" {
			_ = os.Remove(d.sockPath)
		}
		if d.ring != nil && !d.left {
			_ = d.ring.Shutdown()
		}
		d.mu.Lock()
		if d.sess != nil {
			_ = d.sess.Close()
		}
		d.mu.Unlock()
		unlockStateDir(d.lock)
	})
}

// dataflow returns a dataflow by id, or nil.
func (d *Daemon) dataflow(id string) *dataflow {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dataflows[id]
}

// allDataflows returns every dataflow known, sorted by id.
func (d *Daemon) allDataflows() []*dataflow {
	d.mu.Lock()
	out := make([]*dataflow, 0, len(d.dataflows))
	for _, df := range d.dataflows {
		out = append(out, df)
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// dataflowEnded runs once every node of a dataflow has an outcome: forget the oldest
// ended dataflows beyond maxEndedDataflows.
func (d *Daemon) dataflowEnded(df *dataflow) {
	d.log.Info("dataflow ended on this daemon", "dataflow", df.id)
	if d.links != nil {
		d.links.removeDataflow(df.id)
	}
	type ended struct {
		id string
		at time.Time
	}
	var list []ended
	for _, x := range d.allDataflows() {
		x.mu.Lock()
		if !x.endedAt.IsZero() {
			list = append(list, ended{x.id, x.endedAt})
		}
		x.mu.Unlock()
	}
	if len(list) <= maxEndedDataflows {
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].at.Before(list[j].at) })
	d.mu.Lock()
	for _, e := range list[:len(list)-maxEndedDataflows] {
		delete(d.dataflows, e.id)
	}
	d.mu.Unlock()
}

// Name is the daemon's member name.
func (d *Daemon) Name() string { return d.cfg.Name }

// BootEpoch changes on every daemon start; it is sent at registration.
func (d *Daemon) BootEpoch() int64 { return d.epoch }

// ControlAddr is the advertised address of the daemon's own listener.
func (d *Daemon) ControlAddr() string { return d.ctlAddr }

// NodeListenAddr is the address dynamic nodes connect to ("" when disabled).
func (d *Daemon) NodeListenAddr() string {
	if d.nodeLn == nil {
		return ""
	}
	return d.nodeLn.Addr().String()
}

// NodeSocket is the unix socket spawned nodes connect to.
func (d *Daemon) NodeSocket() string { return d.sockPath }

// StateDir is the daemon's own state folder (Config.StateDir/<name>).
func (d *Daemon) StateDir() string { return d.dir }

// GossipAddr is the ring member's address ("" without gossip).
func (d *Daemon) GossipAddr() string { return d.gossipAddr() }
