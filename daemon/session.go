package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/doractl/doractl/proto"
)

const (
	// sessionKeepAlive is the ping interval of the coordinator link.
	sessionKeepAlive = 500 * time.Millisecond
	// sessionIdleTimeout closes the coordinator link when nothing was received this long.
	sessionIdleTimeout = 5 * time.Second
	// dialTimeout bounds one dial of the coordinator.
	dialTimeout = 5 * time.Second
	// registerTimeout bounds the register request.
	registerTimeout = 10 * time.Second
)

// runSession keeps a registered session with the coordinator until ctx is done. It never
// gives up: nodes keep running while the coordinator is away (DESIGN invariant 6). A
// daemon shutting down does not register again: it would pass for alive with a
// coordinator (often the next cluster's, after destroy) and then vanish.
func (d *Daemon) runSession(ctx context.Context) {
	bo := newBackoff(d.cfg.ReconnectMin, d.cfg.ReconnectMax)
	failures := 0
	lastRejection := ""
	for ctx.Err() == nil {
		if d.isShutting() {
			d.log.Warn("shutting down without a coordinator link: not registering again; the coordinator infers the outcomes not sent")
			return
		}
		conn, reply, err := d.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := bo.next()
			var rej *proto.RemoteError
			if errors.As(err, &rej) && rej.Type == proto.TypeRegister {
				// The coordinator answered and said no (cluster key, a name in use):
				// retrying soon changes nothing, so wait the longest backoff.
				wait = d.cfg.ReconnectMax
				if rej.Msg != lastRejection || failures%20 == 0 {
					d.log.Error("coordinator rejected registration: "+rej.Msg, "addr", d.coordinatorName(), "retry_in", wait, "attempts", failures)
				} else {
					d.log.Debug("coordinator rejected registration: "+rej.Msg, "retry_in", wait)
				}
				lastRejection = rej.Msg
			} else if failures == 1 || failures%20 == 0 {
				d.log.Warn("coordinator unreachable, retrying", "addr", d.coordinatorName(), "error", err, "retry_in", wait, "attempts", failures)
			} else {
				d.log.Debug("coordinator unreachable, retrying", "addr", d.coordinatorName(), "error", err, "retry_in", wait)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		failures, lastRejection = 0, ""
		bo.reset()
		d.registered(conn, reply)
		select {
		case <-conn.Done():
			d.log.Warn("coordinator link lost; nodes keep running, reconnecting", "error", conn.Err())
		case <-ctx.Done():
			_ = conn.Close()
		}
		d.setSession(nil)
		d.out.attach(nil)
	}
}

func (d *Daemon) coordinatorName() string {
	if d.cfg.Dial != nil {
		return "(custom dialer)"
	}
	return d.cfg.CoordinatorAddr
}

// connect dials the coordinator and registers.
func (d *Daemon) connect(ctx context.Context) (*proto.Conn, *proto.RegisterReply, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if d.cfg.Dial != nil {
		nc, err = d.cfg.Dial(dctx)
	} else {
		var dialer net.Dialer
		nc, err = dialer.DialContext(dctx, "tcp", d.cfg.CoordinatorAddr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dial coordinator: %w", err)
	}
	conn := proto.NewConn(nc, proto.Options{
		KeepAlive:   sessionKeepAlive,
		IdleTimeout: sessionIdleTimeout,
		OnRequest:   d.onCoordinatorRequest,
		Logger:      d.log.Named("session"),
	})
	rctx, rcancel := context.WithTimeout(ctx, registerTimeout)
	defer rcancel()
	var reply proto.RegisterReply
	if err := conn.Request(rctx, proto.TypeRegister, d.registerRequest(), &reply); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("register with coordinator: %w", err)
	}
	return conn, &reply, nil
}

// registerRequest describes this daemon and what it runs now.
func (d *Daemon) registerRequest() *proto.RegisterRequest {
	req := &proto.RegisterRequest{
		Name:        d.cfg.Name,
		Machine:     d.cfg.Machine,
		ControlAddr: d.ctlAddr,
		GossipAddr:  d.gossipAddr(),
		BootEpoch:   d.epoch,
		Version:     d.cfg.Version,
		Labels:      d.cfg.Labels,
		Protocol:    proto.ProtocolVersion,
		Running:     []proto.RunningNode{},
		KeyProof:    proto.RegisterProof(d.cfg.SecretKey, d.cfg.Name, d.epoch),
	}
	for _, df := range d.allDataflows() {
		df.mu.Lock()
		for _, id := range df.order {
			if n := df.nodes[id]; !n.final {
				req.Running = append(req.Running, proto.RunningNode{DataflowID: df.id, NodeID: id, PID: n.pid})
			}
		}
		df.mu.Unlock()
	}
	return req
}

// registered starts using a new session: join the ring, resend the latest status of every
// node (a status written just before a link broke may never have been read), and apply
// the fencing and stop intents of the reply.
func (d *Daemon) registered(conn *proto.Conn, reply *proto.RegisterReply) {
	d.log.Info("registered with coordinator", "addr", d.coordinatorName(),
		"kill", reply.KillDataflows, "kill_nodes", len(reply.KillNodes), "stop", reply.StopDataflows)
	d.setSession(conn)
	d.joinRing(reply)
	for _, df := range d.allDataflows() {
		for _, st := range df.statuses() {
			d.out.push(st)
		}
	}
	d.killDataflows(reply.KillDataflows, outcomeFenced)
	if len(reply.KillNodes) > 0 {
		d.log.Warn("coordinator fences nodes whose outcome it has recorded (e.g. lost while this daemon was declared dead): killing them", "nodes", reply.KillNodes)
		d.killNodes(reply.KillNodes, outcomeFenced)
	}
	for _, id := range reply.StopDataflows {
		if df := d.dataflow(id); df != nil {
			d.stopDataflow(df, d.planFor(&proto.StopRequest{DataflowID: id}))
		}
	}
	d.out.attach(conn)
}

// announceLeaving tells the coordinator, over the control link, that this daemon is
// leaving gracefully, so that the link reset and refused port of its exit are not taken
// for a crash. It does not wait for an answer.
func (d *Daemon) announceLeaving(reason string) {
	d.mu.Lock()
	conn := d.sess
	d.mu.Unlock()
	if conn == nil {
		return
	}
	if err := conn.Notify(proto.TypeLeaving, &proto.Leaving{Reason: reason}); err != nil {
		d.log.Debug("leave announcement not sent", "error", err)
	}
}

// isShutting reports whether the daemon is shutting down.
func (d *Daemon) isShutting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.shutting
}

func (d *Daemon) setSession(conn *proto.Conn) {
	d.mu.Lock()
	d.sess = conn
	d.mu.Unlock()
}
