package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/proto"
)

const (
	// peerDialTimeout bounds one dial of a peer daemon and its hello.
	peerDialTimeout = 3 * time.Second
	// peerKeepAlive and peerIdleTimeout are the ping period and read deadline of a
	// daemon<->daemon link: a partitioned peer's link is dropped and redialed.
	peerKeepAlive   = time.Second
	peerIdleTimeout = 5 * time.Second
	// peerWriteTimeout bounds one write on a daemon<->daemon link; the sender, not the
	// producer, waits for it.
	peerWriteTimeout = 5 * time.Second
	// peerIdleClose closes a link that no dataflow uses and that has nothing queued.
	peerIdleClose = 30 * time.Second
	// dropReportEvery rate-limits the warning about a full link queue.
	dropReportEvery = 5 * time.Second
	// maxEarlyClosed bounds the closes kept for dataflows not spawned here yet.
	maxEarlyClosed = 1024
)

// links is the daemon's RemoteSink: it forwards outputs of local nodes, once per peer
// daemon running consumers of them, over one daemon<->daemon link per peer, and it
// delivers what peers forward to the local subscribers through the router.
type links struct {
	self      string
	epoch     int64
	key       []byte // cluster key: the hello proves it (nil: none)
	queueSize int
	reMin     time.Duration
	reMax     time.Duration
	ctx       context.Context
	log       hclog.Logger

	mu     sync.Mutex
	dfs    map[string]*remoteDataflow
	peers  map[string]*peerLink
	early  map[string][]proto.RemoteOutputClosed // closes that came before the spawn
	nEarly int
}

// remoteDataflow is what links knows of one dataflow spawned here.
type remoteDataflow struct {
	router    *router
	placement map[string]string         // node -> daemon
	subs      map[outputKey][]*peerLink // local outputs -> peers consuming them
}

func newLinks(ctx context.Context, cfg *Config, epoch int64, log hclog.Logger) *links {
	return &links{
		self:      cfg.Name,
		epoch:     epoch,
		key:       cfg.SecretKey,
		queueSize: cfg.RemoteQueueSize,
		reMin:     cfg.ReconnectMin,
		reMax:     cfg.ReconnectMax,
		ctx:       ctx,
		log:       log,
		dfs:       map[string]*remoteDataflow{},
		peers:     map[string]*peerLink{},
		early:     map[string][]proto.RemoteOutputClosed{},
	}
}

// addDataflow records a dataflow spawned here: where its nodes run, how to reach the
// other daemons and which of them consume which local outputs.
func (l *links) addDataflow(req *proto.SpawnRequest, r *router) {
	rd := &remoteDataflow{
		router:    r,
		placement: req.Placement,
		subs:      map[outputKey][]*peerLink{},
	}
	l.mu.Lock()
	byName := map[string]*peerLink{}
	peer := func(name string) *peerLink {
		if p := byName[name]; p != nil {
			return p
		}
		p := l.peerLocked(name, req.DaemonAddrs[name])
		p.refs++
		byName[name] = p
		return p
	}
	for _, s := range req.Subscriptions {
		k := outputKey{s.Node, s.Output}
		for _, name := range s.Daemons {
			if name != l.self && name != "" {
				rd.subs[k] = append(rd.subs[k], peer(name))
			}
		}
	}
	l.dfs[req.DataflowID] = rd
	early := l.early[req.DataflowID]
	delete(l.early, req.DataflowID)
	l.nEarly -= len(early)
	l.mu.Unlock()
	for _, c := range early {
		r.closeOutputs(c.Node, c.Outputs)
	}
}

// peerLocked returns the link to a peer daemon, starting it when there is none; a new
// address (the peer restarted) replaces the old one for the next dial. Call with l.mu held.
func (l *links) peerLocked(name, addr string) *peerLink {
	p := l.peers[name]
	if p == nil {
		p = newPeerLink(l, name, addr)
		l.peers[name] = p
		go p.run()
		return p
	}
	p.setAddr(addr)
	return p
}

// removeDataflow forgets an ended dataflow; links no dataflow uses close once drained.
func (l *links) removeDataflow(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rd := l.dfs[id]
	if rd == nil {
		return
	}
	delete(l.dfs, id)
	seen := map[*peerLink]bool{}
	release := func(p *peerLink) {
		if !seen[p] {
			seen[p] = true
			p.refs--
		}
	}
	for _, ps := range rd.subs {
		for _, p := range ps {
			release(p)
		}
	}
}

// targets returns the peers consuming one local output.
func (l *links) targets(df, node, output string) []*peerLink {
	l.mu.Lock()
	defer l.mu.Unlock()
	rd := l.dfs[df]
	if rd == nil {
		return nil
	}
	return rd.subs[outputKey{node, output}]
}

// Output queues a local node's message for every peer daemon consuming it. It never
// blocks: a full link queue drops its oldest message.
func (l *links) Output(df, node, output string, data []byte, md proto.Metadata) {
	for _, p := range l.targets(df, node, output) {
		p.q.push(peerItem{typ: proto.TypeRemoteOutput, out: &proto.RemoteOutput{
			DataflowID: df, Node: node, Output: output, Data: data, Metadata: md,
		}})
	}
}

// OutputsClosed tells every peer consuming some of these outputs that they ended.
func (l *links) OutputsClosed(df, node string, outputs []string) {
	per := map[*peerLink][]string{}
	var order []*peerLink
	for _, o := range outputs {
		for _, p := range l.targets(df, node, o) {
			if _, ok := per[p]; !ok {
				order = append(order, p)
			}
			per[p] = append(per[p], o)
		}
	}
	for _, p := range order {
		p.q.push(peerItem{typ: proto.TypeRemoteOutputClosed, ctl: &proto.RemoteOutputClosed{
			DataflowID: df, Node: node, Outputs: per[p],
		}})
	}
}

// deliver hands a message forwarded by a peer to the local subscribers.
func (l *links) deliver(m *proto.RemoteOutput) {
	l.mu.Lock()
	rd := l.dfs[m.DataflowID]
	l.mu.Unlock()
	if rd == nil {
		return // dataflow not (or no longer) here
	}
	if rd.placement[m.Node] == l.self {
		return // a local node's output comes from its own link, never from a peer
	}
	rd.router.publish(m.Node, m.Output, m.Data, m.Metadata)
}

// closed ends the inputs fed by a peer's node.
func (l *links) closed(m *proto.RemoteOutputClosed) {
	l.mu.Lock()
	rd := l.dfs[m.DataflowID]
	if rd == nil {
		// The producer ended before this daemon had the spawn: keep it for addDataflow.
		if l.nEarly < maxEarlyClosed {
			l.early[m.DataflowID] = append(l.early[m.DataflowID], *m)
			l.nEarly++
		}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	if rd.placement[m.Node] == l.self {
		return
	}
	rd.router.closeOutputs(m.Node, m.Outputs)
}

// daemonDead closes, in the given dataflows (all when empty), every local input fed by a
// node of the dead daemon. It returns the number of producer nodes whose outputs closed.
func (l *links) daemonDead(dead string, dfs []string) int {
	l.mu.Lock()
	var todo []*remoteDataflow
	if len(dfs) == 0 {
		for _, rd := range l.dfs {
			todo = append(todo, rd)
		}
	}
	for _, id := range dfs {
		if rd := l.dfs[id]; rd != nil {
			todo = append(todo, rd)
		}
	}
	l.mu.Unlock()
	n := 0
	for _, rd := range todo {
		for node, daemon := range rd.placement {
			if daemon != dead || daemon == l.self {
				continue
			}
			if outs := rd.router.subscribedOutputs(node); len(outs) > 0 {
				rd.router.closeOutputs(node, outs)
				n++
			}
		}
	}
	return n
}

// forget removes a peer link that ended.
func (l *links) forget(p *peerLink) {
	l.mu.Lock()
	if l.peers[p.name] == p {
		delete(l.peers, p.name)
	}
	l.mu.Unlock()
}

// idle reports whether no dataflow uses the peer. Call with l.mu not held.
func (l *links) idle(p *peerLink) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return p.refs <= 0
}

// retire removes a peer link that no dataflow uses and that has nothing queued, in one
// step, so that no dataflow can pick it up after its goroutine decided to end. It reports
// whether the link was removed.
func (l *links) retire(p *peerLink) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.refs > 0 || p.q.len() > 0 {
		return false
	}
	if l.peers[p.name] == p {
		delete(l.peers, p.name)
	}
	return true
}

// peerStats is a link's counters, for tests and logs.
type peerStats struct {
	Sent, Dropped uint64
	Queued        int
	Connected     bool
}

// stats returns the counters of the link to a peer (zero when there is none).
func (l *links) stats(name string) peerStats {
	l.mu.Lock()
	p := l.peers[name]
	l.mu.Unlock()
	if p == nil {
		return peerStats{}
	}
	return p.stats()
}

// subscribedOutputs lists the outputs of a producer that local inputs subscribe to.
func (r *router) subscribedOutputs(producer string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.routes {
		if k.node == producer && !contains(out, k.output) {
			out = append(out, k.output)
		}
	}
	return out
}

// peerItem is one event waiting on a link: data (droppable) or a close (kept).
type peerItem struct {
	typ string
	out *proto.RemoteOutput
	ctl *proto.RemoteOutputClosed
}

// peerQueue is the bounded send queue of one link. When it is full the oldest data
// message is dropped, so a slow or unreachable peer never slows a producer; closes are
// never dropped (there are few of them).
type peerQueue struct {
	mu      sync.Mutex
	items   []peerItem // live items are items[head:]
	head    int
	size    int
	data    int // data items queued
	dropped uint64
	wake    chan struct{}
}

func newPeerQueue(size int) *peerQueue {
	if size <= 0 {
		size = defaultRemoteQueueSize
	}
	return &peerQueue{size: size, wake: make(chan struct{}, 1)}
}

func (q *peerQueue) push(it peerItem) {
	q.mu.Lock()
	if it.out != nil {
		if q.data >= q.size {
			q.dropOldestData()
		}
		q.data++
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// dropOldestData removes the oldest data item: usually the head, so O(1). Call with mu held.
func (q *peerQueue) dropOldestData() {
	for i := q.head; i < len(q.items); i++ {
		if q.items[i].out == nil {
			continue
		}
		if i == q.head {
			q.items[i] = peerItem{}
			q.head++
		} else {
			q.items = append(q.items[:i], q.items[i+1:]...)
		}
		q.data--
		q.dropped++
		return
	}
}

// pop takes the oldest item.
func (q *peerQueue) pop() (peerItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		return peerItem{}, false
	}
	it := q.items[q.head]
	q.items[q.head] = peerItem{}
	q.head++
	if it.out != nil {
		q.data--
	}
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > 2*q.size:
		// Compact so that a queue that never empties does not grow.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return it, true
}

func (q *peerQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// droppedSoFar is the number of data messages dropped on overflow.
func (q *peerQueue) droppedSoFar() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// peerLink is the link to one peer daemon: dialed on demand, redialed with backoff, fed
// by its queue. Its refs are guarded by links.mu.
type peerLink struct {
	l    *links
	name string
	q    *peerQueue
	log  hclog.Logger
	refs int
	// reported and reportedAt rate-limit the drop warning; used by run's goroutine only.
	reported   uint64
	reportedAt time.Time

	mu        sync.Mutex
	addr      string
	sent      uint64
	connected bool
}

func newPeerLink(l *links, name, addr string) *peerLink {
	return &peerLink{l: l, name: name, addr: addr, q: newPeerQueue(l.queueSize), log: l.log.With("peer", name)}
}

func (p *peerLink) setAddr(addr string) {
	if addr == "" {
		return
	}
	p.mu.Lock()
	if addr != p.addr {
		p.log.Info("peer daemon address changed", "old", p.addr, "new", addr)
		p.addr = addr
	}
	p.mu.Unlock()
}

func (p *peerLink) stats() peerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.q.mu.Lock()
	defer p.q.mu.Unlock()
	return peerStats{Sent: p.sent, Dropped: p.q.dropped, Queued: len(p.q.items) - p.q.head, Connected: p.connected}
}

// run keeps the link up and drains the queue into it, until the daemon closes or the
// link has been idle (no dataflow, nothing queued) for peerIdleClose.
func (p *peerLink) run() {
	defer p.l.forget(p)
	bo := newBackoff(p.l.reMin, p.l.reMax)
	failures := 0
	idleSince := time.Time{}
	for p.l.ctx.Err() == nil {
		if p.l.idle(p) && p.q.len() == 0 {
			if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) >= peerIdleClose && p.l.retire(p) {
				p.log.Debug("closing unused daemon link")
				return
			}
		} else {
			idleSince = time.Time{}
		}
		conn, err := p.dial()
		if err != nil {
			failures++
			wait := bo.next()
			if failures == 1 || failures%20 == 0 {
				p.log.Warn("peer daemon unreachable, retrying", "error", err, "retry_in", wait, "attempts", failures, "queued", p.q.len())
			}
			t := time.NewTimer(wait)
			select {
			case <-p.l.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if failures > 0 {
			p.log.Info("peer daemon link up again", "attempts", failures)
		}
		failures = 0
		bo.reset()
		p.setConnected(true)
		stop := p.pump(conn)
		p.setConnected(false)
		_ = conn.Close()
		if stop {
			return
		}
	}
}

func (p *peerLink) setConnected(v bool) {
	p.mu.Lock()
	p.connected = v
	p.mu.Unlock()
}

// dial connects to the peer's control listener and says who we are.
func (p *peerLink) dial() (*proto.Conn, error) {
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	if addr == "" {
		return nil, fmt.Errorf("no control address known for daemon %q", p.name)
	}
	ctx, cancel := context.WithTimeout(p.l.ctx, peerDialTimeout)
	defer cancel()
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial daemon %q at %s: %w", p.name, addr, err)
	}
	conn := proto.NewConn(nc, proto.Options{
		KeepAlive:    peerKeepAlive,
		IdleTimeout:  peerIdleTimeout,
		WriteTimeout: peerWriteTimeout,
		Logger:       p.log,
	})
	hello := proto.DaemonHello{Name: p.l.self, BootEpoch: p.l.epoch, Protocol: proto.ProtocolVersion,
		KeyProof: proto.HelloProof(p.l.key, p.l.self, p.l.epoch)}
	if err := conn.Request(ctx, proto.TypeDaemonHello, hello, nil); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("hello to daemon %q at %s: %w", p.name, addr, err)
	}
	return conn, nil
}

// pump sends queued items until the link fails (false) or the daemon closes or the link
// is idle long enough to close (true).
func (p *peerLink) pump(conn *proto.Conn) bool {
	idle := time.NewTimer(peerIdleClose)
	defer idle.Stop()
	for {
		it, ok := p.q.pop()
		if !ok {
			select {
			case <-p.q.wake:
				continue
			case <-conn.Done():
				p.log.Debug("peer daemon link lost", "error", conn.Err())
				return false
			case <-p.l.ctx.Done():
				return true
			case <-idle.C:
				if p.l.retire(p) {
					p.log.Debug("closing unused daemon link")
					return true
				}
				idle.Reset(peerIdleClose)
				continue
			}
		}
		if d := p.q.droppedSoFar(); d > p.reported && time.Since(p.reportedAt) >= dropReportEvery {
			p.log.Warn("daemon link queue full: oldest messages dropped", "dropped", d-p.reported, "total", d)
			p.reported, p.reportedAt = d, time.Now()
		}
		var msg any = it.out
		if it.ctl != nil {
			msg = it.ctl
		}
		if err := conn.Notify(it.typ, msg); err != nil {
			p.log.Debug("write to peer daemon failed, redialing", "error", err)
			return false
		}
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
	}
}

// peerConn is the state of one link on the control listener: with a cluster key, a peer
// daemon's forwarded outputs are accepted only after a hello that proves the key.
type peerConn struct {
	d      *Daemon
	conn   *proto.Conn
	ready  chan struct{} // closed once conn is set
	authed atomic.Bool
	warned atomic.Bool
}

func (pc *peerConn) onRequest(ctx context.Context, typ string, body proto.Body) (any, error) {
	<-pc.ready
	if typ == proto.TypeDaemonHello {
		var h proto.DaemonHello
		if err := body.Decode(&h); err != nil {
			return nil, fmt.Errorf("daemon hello: %w", err)
		}
		key := pc.d.cfg.SecretKey
		if why := proto.CheckKeyProof(key, h.KeyProof, proto.HelloProof(key, h.Name, h.BootEpoch)); why != "" {
			pc.d.log.Warn("peer daemon link rejected", "peer", h.Name, "remote", pc.conn.RemoteAddr().String(), "reason", why)
			time.AfterFunc(200*time.Millisecond, func() { _ = pc.conn.Close() })
			return nil, fmt.Errorf("daemon %s rejected the link: %s", pc.d.cfg.Name, why)
		}
		pc.authed.Store(true)
	}
	return pc.d.onPeerRequest(ctx, typ, body)
}

func (pc *peerConn) onEvent(typ string, body proto.Body) {
	<-pc.ready
	if len(pc.d.cfg.SecretKey) > 0 && !pc.authed.Load() {
		if !pc.warned.Swap(true) {
			pc.d.log.Warn("ignoring peer daemon events without a hello proving the cluster key", "type", typ, "remote", pc.conn.RemoteAddr().String())
		}
		return
	}
	pc.d.onPeerEvent(typ, body)
}

// onPeerRequest serves requests arriving on the control listener from peer daemons.
func (d *Daemon) onPeerRequest(_ context.Context, typ string, body proto.Body) (any, error) {
	switch typ {
	case proto.TypeDaemonHello:
		var h proto.DaemonHello
		if err := body.Decode(&h); err != nil {
			return nil, fmt.Errorf("daemon hello: %w", err)
		}
		d.log.Debug("peer daemon link", "peer", h.Name, "epoch", h.BootEpoch)
		return &proto.Ack{OK: true}, nil
	}
	return nil, fmt.Errorf("daemon %s serves no %q requests on its control listener", d.cfg.Name, typ)
}

// onPeerEvent handles what peer daemons forward. It runs on the link's read loop and
// never blocks: the router's queues drop their oldest message when full.
func (d *Daemon) onPeerEvent(typ string, body proto.Body) {
	if d.links == nil {
		return
	}
	switch typ {
	case proto.TypeRemoteOutput:
		var m proto.RemoteOutput
		if err := body.Decode(&m); err != nil {
			d.log.Warn("bad remote output from a peer daemon", "error", err)
			return
		}
		d.links.deliver(&m)
	case proto.TypeRemoteOutputClosed:
		var m proto.RemoteOutputClosed
		if err := body.Decode(&m); err != nil {
			d.log.Warn("bad remote output close from a peer daemon", "error", err)
			return
		}
		d.links.closed(&m)
	default:
		d.log.Debug("unknown event from a peer daemon", "type", typ)
	}
}

// handleDaemonDead closes the inputs fed by a dead daemon's nodes.
func (d *Daemon) handleDaemonDead(body proto.Body) (*proto.Ack, error) {
	var req proto.DaemonDead
	if err := body.Decode(&req); err != nil {
		return nil, fmt.Errorf("daemon dead: %w", err)
	}
	if req.Name == d.cfg.Name {
		return nil, fmt.Errorf("daemon dead: %s is this daemon", req.Name)
	}
	n := 0
	if d.links != nil {
		n = d.links.daemonDead(req.Name, req.DataflowIDs)
	}
	d.log.Warn("peer daemon confirmed dead: inputs fed by its nodes closed", "peer", req.Name,
		"dataflows", req.DataflowIDs, "producers", n, "reason", req.Reason)
	return &proto.Ack{OK: true}, nil
}

// defaultRemoteQueueSize is the default send queue of a daemon<->daemon link.
const defaultRemoteQueueSize = 1024

// remoteSink is what routers hand outputs for other daemons to.
func (d *Daemon) remoteSink() RemoteSink {
	if d.links != nil {
		return d.links
	}
	return d.cfg.Remote
}
