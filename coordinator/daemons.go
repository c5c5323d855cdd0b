package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/doractl/doractl/failure"
	"github.com/doractl/doractl/proto"
)

// acceptLoop serves daemon links arriving on ln until ctx ends.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) {
	backoff := 10 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accepting a daemon link failed", "addr", ln.Addr().String(), "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		s.AcceptDaemon(nc)
	}
}

// linkState is where a daemon link is in its handshake.
type linkState int

const (
	linkNew         linkState = iota // nothing received yet
	linkRegistering                  // register request being handled
	linkRegistered                   // a session
)

// link is one daemon connection, before and after its registration.
type link struct {
	srv        *Server
	hc         *heardConn
	conn       *proto.Conn
	ready      chan struct{} // closed once conn is set
	registered chan struct{} // closed once the session exists
	events     *eventQueue

	mu    sync.Mutex
	state linkState
	sess  *session
}

// AcceptDaemon serves an already-connected daemon link (a TCP connection, or one end of
// a net.Pipe for in-process runs). The daemon must send its register request first.
func (s *Server) AcceptDaemon(nc net.Conn) {
	l := &link{
		srv:        s,
		hc:         &heardConn{Conn: nc},
		ready:      make(chan struct{}),
		registered: make(chan struct{}),
		events:     newEventQueue(),
	}
	l.conn = proto.NewConn(l.hc, proto.Options{
		KeepAlive:   s.cfg.LinkKeepAlive,
		IdleTimeout: s.cfg.LinkIdleTimeout,
		OnRequest:   l.onRequest,
		OnEvent:     l.onEvent,
		OnClose:     l.onClose,
		Logger:      s.log.Named("link"),
	})
	close(l.ready)
	go l.awaitRegister()
}

// awaitRegister closes a link that does not register in time.
func (l *link) awaitRegister() {
	t := time.NewTimer(l.srv.cfg.RegisterTimeout)
	defer t.Stop()
	select {
	case <-l.registered:
	case <-l.conn.Done():
	case <-t.C:
		l.reject(fmt.Sprintf("no register request within %s", l.srv.cfg.RegisterTimeout))
	case <-l.srv.ctx.Done():
		_ = l.conn.Close()
	}
}

// reject logs why a link is closed and closes it.
func (l *link) reject(reason string) {
	<-l.ready
	l.srv.log.Warn("closing daemon link", "remote", l.conn.RemoteAddr().String(), "reason", reason)
	_ = l.conn.Close()
}

func (l *link) currentState() linkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

func (l *link) onRequest(ctx context.Context, typ string, body proto.Body) (any, error) {
	<-l.ready
	if typ != proto.TypeRegister {
		if l.currentState() != linkRegistered {
			err := fmt.Errorf("first request must be %q, got %q", proto.TypeRegister, typ)
			l.rejectAfterReply(err.Error())
			return nil, err
		}
		return nil, fmt.Errorf("coordinator does not serve %q requests", typ)
	}
	l.mu.Lock()
	if l.state != linkNew {
		l.mu.Unlock()
		return nil, errors.New("this link is already registered")
	}
	l.state = linkRegistering
	l.mu.Unlock()

	var req proto.RegisterRequest
	if err := body.Decode(&req); err != nil {
		err = fmt.Errorf("bad register request: %w", err)
		l.rejectAfterReply(err.Error())
		return nil, err
	}
	reply, sess, err := l.srv.registerDaemon(l, req)
	if err != nil {
		l.rejectAfterReply(err.Error())
		return nil, err
	}
	l.mu.Lock()
	l.state, l.sess = linkRegistered, sess
	l.mu.Unlock()
	close(l.registered)
	return reply, nil
}

// rejectAfterReply closes the link shortly after the error reply has been written, so
// the daemon can log the reason.
func (l *link) rejectAfterReply(reason string) {
	time.AfterFunc(200*time.Millisecond, func() { l.reject(reason) })
}

func (l *link) onEvent(typ string, body proto.Body) {
	if l.currentState() == linkNew {
		go l.reject(fmt.Sprintf("event %q before the register request", typ))
		return
	}
	switch typ {
	case proto.TypeLeaving:
		var lv proto.Leaving
		if err := body.Decode(&lv); err != nil {
			l.srv.log.Warn("bad leaving event", "remote", l.conn.RemoteAddr().String(), "error", err)
			return
		}
		l.mu.Lock()
		if l.sess != nil {
			l.sess.leaving.Store(true)
		}
		l.mu.Unlock()
		l.events.pushLeaving(lv)
	case proto.TypeNodeStatus:
		var ns proto.NodeStatus
		if err := body.Decode(&ns); err != nil {
			l.srv.log.Warn("bad node status event", "remote", l.conn.RemoteAddr().String(), "error", err)
			return
		}
		l.events.push(ns)
	default:
		l.srv.log.Debug("ignoring daemon event", "type", typ, "remote", l.conn.RemoteAddr().String())
	}
}

func (l *link) onClose(err error) {
	l.events.close()
	l.mu.Lock()
	sess := l.sess
	l.mu.Unlock()
	if sess != nil {
		l.srv.sessionClosed(sess, err)
		return
	}
	l.srv.log.Debug("unregistered daemon link closed", "error", err)
}

// registerDaemon makes a session of a link: it replaces an older link of the same
// daemon, reconciles what the daemon runs with the registry and answers the register.
func (s *Server) registerDaemon(l *link, req proto.RegisterRequest) (*proto.RegisterReply, *session, error) {
	switch {
	case req.Name == "":
		return nil, nil, errors.New("register: daemon name is empty")
	case req.Name == s.cfg.Name:
		return nil, nil, fmt.Errorf("register: daemon name %q is the coordinator's", req.Name)
	case req.Protocol != 0 && req.Protocol != proto.ProtocolVersion:
		return nil, nil, fmt.Errorf("register: daemon %q speaks protocol %d, the coordinator speaks %d", req.Name, req.Protocol, proto.ProtocolVersion)
	}
	if why := proto.CheckKeyProof(s.cfg.SecretKey, req.KeyProof, proto.RegisterProof(s.cfg.SecretKey, req.Name, req.BootEpoch)); why != "" {
		s.log.Warn("registration rejected", "daemon", req.Name, "remote", l.conn.RemoteAddr().String(), "reason", why)
		return nil, nil, errors.New(why)
	}
	if s.forgotten.Load() {
		return nil, nil, errors.New("register: the coordinator is being destroyed")
	}
	if err := s.checkNameFree(req); err != nil {
		s.log.Warn("registration rejected", "daemon", req.Name, "remote", l.conn.RemoteAddr().String(), "reason", err)
		return nil, nil, err
	}
	info := daemonInfo{
		Name:         req.Name,
		Machine:      req.Machine,
		ControlAddr:  req.ControlAddr,
		GossipAddr:   req.GossipAddr,
		BootEpoch:    req.BootEpoch,
		Version:      req.Version,
		Labels:       req.Labels,
		RegisteredAt: time.Now(),
	}
	if info.Machine == "" {
		info.Machine = req.Name
	}
	sess := &session{info: info, conn: l.conn, events: l.events}

	s.sessMu.Lock()
	old := s.sessions[req.Name]
	prev, known := s.known[req.Name]
	s.sessions[req.Name] = sess
	s.known[req.Name] = info
	s.sessionsChangedLocked()
	s.sessMu.Unlock()
	if old != nil {
		s.log.Info("daemon reconnected: replacing its old link", "daemon", req.Name, "old_remote", old.conn.RemoteAddr().String())
		_ = old.conn.Close()
	}

	restarted := known && prev.BootEpoch != 0 && prev.BootEpoch != req.BootEpoch
	kill, killNodes, stop, missing := s.reg.reconcileDaemon(req.Name, req.Running, restarted)
	if len(missing) > 0 {
		go s.resolveMissingLater(req.Name, missing)
	}

	s.live.registered(info)
	name := req.Name
	l.hc.setHook(func() { s.live.heard(name) })
	if s.st != nil && !s.forgotten.Load() {
		if err := s.st.putDaemon(info); err != nil {
			s.log.Error("persisting daemon failed", "daemon", name, "error", err)
		}
	}
	go l.events.run(s.ctx, func(ns proto.NodeStatus) { s.applyStatus(name, ns) },
		func(lv proto.Leaving) { s.daemonLeaving(sess, lv) })
	go s.measureRTT(sess)

	s.log.Info("daemon registered", "daemon", name, "machine", info.Machine, "remote", l.conn.RemoteAddr().String(),
		"control_addr", info.ControlAddr, "boot_epoch", info.BootEpoch, "restarted", restarted,
		"running", len(req.Running), "missing", len(missing), "kill", kill, "kill_nodes", len(killNodes), "stop", stop)
	if len(killNodes) > 0 {
		s.log.Warn("fencing nodes whose outcome is already recorded", "daemon", name, "nodes", killNodes)
	}
	reply := &proto.RegisterReply{
		CoordinatorGossip: s.live.gossipAddr(),
		Seeds:             s.seeds(name),
		KillDataflows:     kill,
		StopDataflows:     stop,
		KillNodes:         killNodes,
	}
	return reply, sess, nil
}

// duplicateCheckTimeout bounds the ping of a daemon's current link when another
// registration arrives with its name.
const duplicateCheckTimeout = 500 * time.Millisecond

// checkNameFree rejects a registration whose name belongs to another daemon process
// (another boot epoch) whose current link still answers: two daemons with one name (e.g.
// the same machine id on cloned images) would otherwise take the link from each other in
// turn. A current link that does not answer, or that the same process opened, is replaced.
func (s *Server) checkNameFree(req proto.RegisterRequest) error {
	old := s.session(req.Name)
	if old == nil {
		return nil
	}
	select {
	case <-old.conn.Done():
		return nil
	default:
	}
	if old.info.BootEpoch == req.BootEpoch {
		// The same process dialled again (its old link looked dead to it, e.g. while this
		// coordinator was paused): its newest link replaces the old one.
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, duplicateCheckTimeout)
	defer cancel()
	if _, err := old.conn.Ping(ctx); err != nil {
		return nil
	}
	return fmt.Errorf("daemon name %q is already registered from %s (boot epoch %d); give this daemon another --machine-id or --name",
		req.Name, old.conn.RemoteAddr().String(), old.info.BootEpoch)
}

// daemonLeaving records a daemon's announced graceful leave: it is left at once, so the
// reset link and refusing port that follow its exit are not taken for a crash.
func (s *Server) daemonLeaving(sess *session, lv proto.Leaving) {
	name := sess.info.Name
	if cur := s.session(name); cur != nil && cur != sess {
		return // a newer link replaced this one: the daemon is back
	}
	reason := "announced graceful leave"
	if lv.Reason != "" {
		reason += " (" + lv.Reason + ")"
	}
	s.log.Info("daemon announced its graceful leave", "daemon", name, "reason", lv.Reason)
	s.live.det.Declare(name, failure.Left, reason)
}

// missingGrace is how long a reconnected daemon has to report the outcome of nodes it
// no longer runs before they get an inferred one.
const missingGrace = 2 * time.Second

// resolveMissingLater waits missingGrace, then resolves what is still missing.
func (s *Server) resolveMissingLater(daemon string, missing []nodeRef) {
	t := time.NewTimer(missingGrace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
		return
	}
	if n := s.reg.resolveMissing(daemon, missing); n > 0 {
		s.log.Warn("nodes gone from a reconnected daemon without an outcome", "daemon", daemon, "nodes", n)
	}
}

// seeds are the gossip addresses of the other known daemons.
func (s *Server) seeds(except string) []string {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	var out []string
	for name, d := range s.known {
		if name != except && d.GossipAddr != "" {
			out = append(out, d.GossipAddr)
		}
	}
	sort.Strings(out)
	return out
}

// sessionClosed forgets a session whose link closed (unless a newer link replaced it) and
// tells the failure detector.
func (s *Server) sessionClosed(sess *session, err error) {
	name := sess.info.Name
	s.sessMu.Lock()
	current := s.sessions[name] == sess
	if current {
		delete(s.sessions, name)
		s.sessionsChangedLocked()
	}
	s.sessMu.Unlock()
	if !current {
		s.log.Debug("replaced daemon link closed", "daemon", name, "error", err)
		return
	}
	if sess.leaving.Load() {
		// Its leave is recorded once the statuses sent before it are applied: the
		// closed link and the port that refuses next are its exit, not a crash.
		s.log.Info("daemon link closed after its announced leave", "daemon", name)
		return
	}
	if err == nil {
		err = proto.ErrClosed
	}
	s.log.Warn("daemon link closed", "daemon", name, "error", err)
	s.live.linkDown(name, err)
}

// sessionsChangedLocked wakes everything waiting for a daemon to (re)connect.
func (s *Server) sessionsChangedLocked() {
	close(s.sessChanged)
	s.sessChanged = make(chan struct{})
}

// session is the current session of a daemon, or nil.
func (s *Server) session(name string) *session {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return s.sessions[name]
}

// sessionOrWait returns the daemon's session and, when there is none, a channel closed
// at the next connect or disconnect.
func (s *Server) sessionOrWait(name string) (*session, <-chan struct{}) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return s.sessions[name], s.sessChanged
}

// connected lists the current sessions sorted by daemon name.
func (s *Server) connected() []*session {
	s.sessMu.Lock()
	out := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	s.sessMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].info.Name < out[j].info.Name })
	return out
}

// knownDaemons lists every daemon that ever registered, sorted by name.
func (s *Server) knownDaemons() []daemonInfo {
	s.sessMu.Lock()
	out := make([]daemonInfo, 0, len(s.known))
	for _, d := range s.known {
		out = append(out, d)
	}
	s.sessMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// applyStatus records a node status report from a daemon.
func (s *Server) applyStatus(daemon string, ns proto.NodeStatus) {
	res, why := s.reg.applyStatus(daemon, ns)
	switch res {
	case statusApplied:
		s.log.Debug("node status", "daemon", daemon, "dataflow", ns.DataflowID, "node", ns.NodeID, "status", ns.Status, "outcome", ns.Outcome)
	case statusIgnored:
		s.log.Debug("node status ignored", "daemon", daemon, "dataflow", ns.DataflowID, "node", ns.NodeID, "status", ns.Status, "why", why)
	case statusUnknownDataflow:
		if proto.IsFinal(ns.Status) {
			return
		}
		s.log.Warn("daemon runs a node of an unknown dataflow: killing it", "daemon", daemon, "dataflow", ns.DataflowID, "node", ns.NodeID)
		go s.kill(daemon, []string{ns.DataflowID})
	}
}

// kill fences dataflows on a daemon.
func (s *Server) kill(daemon string, ids []string) {
	sess := s.session(daemon)
	if sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if err := sess.request(ctx, proto.TypeKill, proto.KillRequest{DataflowIDs: ids}, nil); err != nil {
		s.log.Warn("kill request failed", "daemon", daemon, "dataflows", ids, "error", err)
	}
}

// rttInterval is how often a daemon link's round trip is measured (for /metrics).
const rttInterval = 2 * time.Second

func (s *Server) measureRTT(sess *session) {
	t := time.NewTicker(rttInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ControlCheckTimeout)
		_, _ = sess.ping(ctx)
		cancel()
		select {
		case <-t.C:
		case <-sess.conn.Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}
