package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/failure"
	"github.com/doractl/doractl/proto"
)

// Server is a coordinator: control API, daemon sessions, registry, liveness.
type Server struct {
	cfg       Config
	log       hclog.Logger
	startedAt time.Time

	ctx    context.Context // ends when Run returns
	cancel context.CancelFunc

	reg     *registry
	pers    *persister
	st      *store // nil: memory only
	live    *liveness
	metrics *metrics
	mux     *http.ServeMux

	httpLn, daemonLn net.Listener

	sessMu      sync.Mutex
	sessions    map[string]*session   // current link of each connected daemon
	known       map[string]daemonInfo // every daemon that ever registered
	sessChanged chan struct{}         // closed and replaced when sessions change

	stopMu sync.Mutex
	stops  map[string]*stopOp // stops in progress by dataflow id

	deathMu  sync.Mutex
	notified map[string]time.Time // daemon -> the death whose notice went to its peers

	destroyCh chan struct{}
	// forgotten is set once destroy forgot the cluster's daemons: nothing about a
	// daemon is stored after that (a late leave would write it back for the next cluster).
	forgotten   atomic.Bool
	destroyOnce sync.Once
	runMu       sync.Mutex
	ran         bool
}

// New creates a coordinator: it opens the store, binds the listeners and joins the ring.
// Nothing is served until Run.
func New(cfg *Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         c,
		log:         c.Logger,
		startedAt:   time.Now(),
		sessions:    map[string]*session{},
		known:       map[string]daemonInfo{},
		sessChanged: make(chan struct{}),
		stops:       map[string]*stopOp{},
		notified:    map[string]time.Time{},
		destroyCh:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()

	s.reg = newRegistry(func(id string) { s.pers.mark(id) })
	if c.DataDir != "" {
		if s.st, err = openStore(c.DataDir); err != nil {
			return nil, err
		}
		if err := s.loadStore(); err != nil {
			return nil, err
		}
	}
	s.pers = newPersister(s.st, s.reg.marshal, s.log.Named("store"))
	s.metrics = newMetrics(s)
	s.mux = s.routes()

	if c.DaemonAddr != "" {
		if s.daemonLn, err = net.Listen("tcp", c.DaemonAddr); err != nil {
			return nil, fmt.Errorf("listen for daemons on %s: %w", c.DaemonAddr, err)
		}
	}
	if c.ControlAddr != "" {
		if s.httpLn, err = net.Listen("tcp", c.ControlAddr); err != nil {
			return nil, fmt.Errorf("listen for the control API on %s: %w", c.ControlAddr, err)
		}
	}
	lc := c
	lc.Logger = s.log
	if s.live, err = newLiveness(&lc, s.DaemonAddr(), s.controlCheck); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// loadStore reads the dataflows and daemons a previous run recorded.
func (s *Server) loadStore() error {
	dfs, err := s.st.loadDataflows()
	if err != nil {
		return err
	}
	s.reg.load(dfs)
	daemons, err := s.st.loadDaemons()
	if err != nil {
		return err
	}
	var forget []string
	for _, d := range daemons {
		if d.LeftAt != nil && time.Since(*d.LeftAt) > leftForget {
			forget = append(forget, d.Name)
			continue
		}
		s.known[d.Name] = d
	}
	if len(forget) > 0 {
		if err := s.st.deleteDaemons(forget); err != nil {
			s.log.Warn("forgetting daemons that left long ago", "daemons", forget, "error", err)
		}
	}
	s.log.Info("store loaded", "path", s.st.path, "dataflows", len(dfs), "daemons", len(s.known), "forgotten", len(forget))
	return nil
}

// leftForget is how long a daemon that left the cluster is still listed.
const leftForget = time.Hour

// markLeft records that a daemon left the cluster (it stays listed as left for
// leftForget), in memory and in the store.
func (s *Server) markLeft(name string, at time.Time) {
	s.sessMu.Lock()
	info, ok := s.known[name]
	if ok && info.LeftAt == nil {
		info.LeftAt = &at
		s.known[name] = info
	}
	s.sessMu.Unlock()
	if !ok || info.LeftAt != &at || s.st == nil || s.forgotten.Load() {
		return
	}
	if err := s.st.putDaemon(info); err != nil {
		s.log.Error("persisting daemon failed", "daemon", name, "error", err)
	}
}

// checkRestoredDaemons has the detector check the daemons known from the store that
// have not left and have not registered yet: a daemon whose port refuses is dead at
// once, and one that has not re-registered within RestoredTimeout is declared dead
// then (never suspect forever).
func (s *Server) checkRestoredDaemons() {
	var restored []string
	for _, d := range s.knownDaemons() {
		if d.LeftAt == nil && s.session(d.Name) == nil {
			s.live.restored(d)
			restored = append(restored, d.Name)
		}
	}
	if len(restored) == 0 {
		return
	}
	go func() {
		t := time.NewTimer(s.cfg.RestoredTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		s.declareNotReturned(restored)
	}()
}

// declareNotReturned declares dead the restored daemons that have not registered since
// the coordinator started. One that registered and then lost its link (e.g. while this
// process was paused) is the detector's to judge, like any other daemon.
func (s *Server) declareNotReturned(restored []string) {
	for _, name := range restored {
		if s.session(name) != nil || s.isLeft(name) || s.registeredSinceStart(name) {
			continue
		}
		if v := s.live.verdict(name); v == proto.MemberDead || v == proto.MemberLeft {
			continue
		}
		_, _, why := s.live.state(name)
		s.live.det.Declare(name, failure.Dead, fmt.Sprintf("not re-registered within %s of the coordinator start (%s)", s.cfg.RestoredTimeout, why))
	}
}

// registeredSinceStart reports whether a daemon registered with this coordinator process.
func (s *Server) registeredSinceStart(name string) bool {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return !s.known[name].RegisteredAt.Before(s.startedAt)
}

// isLeft reports whether a known daemon left the cluster.
func (s *Server) isLeft(name string) bool {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return s.known[name].LeftAt != nil
}

// ControlAddr is the bound address of the HTTP control API ("" if none).
func (s *Server) ControlAddr() string { return addrOf(s.httpLn) }

// DaemonAddr is the bound address daemons dial ("" if none).
func (s *Server) DaemonAddr() string { return addrOf(s.daemonLn) }

// isLoopback reports whether a listener's address takes connections from this host only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Run serves until ctx ends or a destroy request completes; both return nil.
// Daemons keep running when the coordinator goes away (they reconnect).
func (s *Server) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.ran {
		s.runMu.Unlock()
		return errors.New("coordinator: Run called twice")
	}
	s.ran = true
	s.runMu.Unlock()

	persCtx, persStop := context.WithCancel(context.Background())
	persDone := make(chan struct{})
	go func() {
		defer close(persDone)
		s.pers.run(persCtx)
	}()
	go s.live.run(s.ctx, s.daemonDead)
	s.checkRestoredDaemons()
	if s.daemonLn != nil {
		go s.acceptLoop(s.ctx, s.daemonLn)
	}
	serveErr := make(chan error, 1)
	var hs *http.Server
	if s.httpLn != nil && len(s.cfg.SecretKey) == 0 && !isLoopback(s.httpLn.Addr()) {
		s.log.Warn("control API open to the network without a cluster key: whoever reaches it can run commands on every machine (see --cluster-key)",
			"addr", s.httpLn.Addr().String())
	}
	if s.httpLn != nil {
		hs = &http.Server{
			Handler:           s.mux,
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return s.ctx },
			ErrorLog:          s.log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		}
		go func() { serveErr <- hs.Serve(s.httpLn) }()
	}
	s.log.Info("coordinator running", "control_addr", s.ControlAddr(), "daemon_addr", s.DaemonAddr(),
		"gossip_addr", s.live.gossipAddr(), "machine", s.cfg.Machine, "data_dir", s.cfg.DataDir)

	var runErr error
	leave := 3 * time.Second
	select {
	case <-ctx.Done():
		s.log.Info("coordinator shutting down", "reason", context.Cause(ctx))
	case <-s.destroyCh:
		// The daemons are leaving too: a leave broadcast soon has nobody to go to.
		leave = time.Second
		s.log.Info("coordinator shutting down after destroy")
	case err := <-serveErr:
		runErr = fmt.Errorf("control API on %s: %w", s.ControlAddr(), err)
	}

	// Ending the base context first ends log streams and waiting stops at once; the
	// destroy reply is already written.
	s.cancel()
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
		cancel()
	}
	for _, sess := range s.connected() {
		_ = sess.conn.Close()
	}
	lctx, cancel := context.WithTimeout(context.Background(), leave)
	s.live.shutdown(lctx)
	cancel()
	persStop()
	<-persDone
	s.closeResources()
	s.log.Info("coordinator stopped")
	return runErr
}

// closeResources releases listeners and the store.
func (s *Server) closeResources() {
	s.cancel()
	for _, ln := range []net.Listener{s.httpLn, s.daemonLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if s.st != nil {
		if err := s.st.close(); err != nil {
			s.log.Warn("closing the store", "error", err)
		}
		s.st = nil
	}
}

// destroyed makes Run return.
func (s *Server) destroyed() {
	s.destroyOnce.Do(func() { close(s.destroyCh) })
}

// Run creates a coordinator from cfg and serves until ctx ends or a destroy request.
func Run(ctx context.Context, cfg *Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// controlCheck is the failure detector's direct check of a daemon: a ping over its
// control link.
func (s *Server) controlCheck(ctx context.Context, name string) error {
	sess := s.session(name)
	if sess == nil {
		return fmt.Errorf("no control link to daemon %q", name)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ControlCheckTimeout)
	defer cancel()
	if _, err := sess.ping(ctx); err != nil {
		return fmt.Errorf("control link to daemon %q: %w", name, err)
	}
	return nil
}

// daemonDead resolves every node without an outcome on a dead (or departed) daemon to
// lost, at once, and fences the daemon's link if it is somehow still open. Whoever is
// woken by the death (a stop, a log stream, the liveness loop) calls it before it
// answers, so its caller sees the nodes lost; the peers hear of each death once.
func (s *Server) daemonDead(d death) {
	s.deathMu.Lock()
	first := !s.notified[d.Daemon].Equal(d.Since)
	s.notified[d.Daemon] = d.Since
	s.deathMu.Unlock()
	var peers map[string][]string
	if first {
		peers = s.deadNoticeTargets(d.Daemon) // before the resolution ends dataflows
	}
	if d.Verdict == proto.MemberLeft {
		s.markLeft(d.Daemon, d.Since)
	}
	changed := s.reg.resolveDaemon(d.Daemon, proto.NodeLost, d.outcome())
	if len(changed) > 0 {
		s.log.Warn("daemon gone: its nodes are lost", "daemon", d.Daemon, "verdict", d.Verdict,
			"since", d.Since, "reason", d.Reason, "dataflows", changed)
	}
	s.notifyDaemonDead(d, peers)
	if d.Verdict != proto.MemberDead {
		return
	}
	if sess := s.session(d.Daemon); sess != nil {
		s.log.Warn("closing the link of a daemon confirmed dead", "daemon", d.Daemon)
		_ = sess.conn.Close()
	}
}
