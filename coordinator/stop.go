package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/doractl/doractl/proto"
)

// stopAckTimeout bounds the wait for a daemon to acknowledge a stop (it acks at once).
const stopAckTimeout = 3 * time.Second

// forceWait is how long the coordinator still waits for outcomes after the deadline's
// force-kill.
const forceWait = time.Second

// stopParams are the parsed options of a stop request.
type stopParams struct {
	grace, killAfter, timeout time.Duration
	force, detach             bool
}

func (s *Server) parseStop(req proto.APIStopRequest) (stopParams, error) {
	p := stopParams{grace: s.cfg.DefaultGrace, force: req.Force, detach: req.Detach}
	if req.Grace != "" {
		g, err := time.ParseDuration(req.Grace)
		if err != nil || g < 0 {
			return p, newAPIError(http.StatusBadRequest, "bad grace %q: want a duration such as 10s", req.Grace)
		}
		p.grace = g
	}
	p.killAfter = s.cfg.killWindow(p.grace)
	p.timeout = p.grace + p.killAfter + s.cfg.StopTimeoutSlack
	if req.Timeout != "" {
		t, err := time.ParseDuration(req.Timeout)
		if err != nil || t <= 0 {
			return p, newAPIError(http.StatusBadRequest, "bad timeout %q: want a positive duration such as 30s", req.Timeout)
		}
		if !p.force && t < p.grace+p.killAfter {
			// The deadline's force-kill would cut the grace short and still look clean.
			return p, newAPIError(http.StatusBadRequest,
				"timeout %s is shorter than grace %s + kill window %s: give a longer --timeout, a shorter --grace-duration, or --force",
				t, p.grace, p.killAfter)
		}
		p.timeout = t
	}
	return p, nil
}

// stopOp is one running stop of a dataflow. Later stop requests of the same dataflow
// join it instead of starting another.
type stopOp struct {
	srv      *Server
	id, name string
	p        stopParams
	start    time.Time
	sent     chan struct{} // closed once the stops are sent
	done     chan struct{} // closed once reply is set
	reply    *proto.APIStopReply

	mu sync.Mutex
	// unreached holds, per daemon, why the last stop sent to it was not acknowledged
	// (not connected, or the request failed): the reply says so for a daemon that did
	// not confirm.
	unreached map[string]string
}

// setUnreached records why a daemon did not acknowledge the stop ("" = it did).
func (op *stopOp) setUnreached(daemon, why string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if why == "" {
		delete(op.unreached, daemon)
		return
	}
	if op.unreached == nil {
		op.unreached = map[string]string{}
	}
	op.unreached[daemon] = why
}

// unreachedNotes copies the reasons recorded by setUnreached.
func (op *stopOp) unreachedNotes() map[string]string {
	op.mu.Lock()
	defer op.mu.Unlock()
	out := make(map[string]string, len(op.unreached))
	for d, why := range op.unreached {
		out[d] = why
	}
	return out
}

// stopDataflow records the stop intent, sends the stop to every daemon of the dataflow in
// parallel and waits until every node has an outcome or the deadline passes (DESIGN
// "Stop, precisely"). A finished dataflow answers at once with its recorded outcomes.
func (s *Server) stopDataflow(ctx context.Context, ref string, req proto.APIStopRequest) (*proto.APIStopReply, error) {
	p, err := s.parseStop(req)
	if err != nil {
		return nil, err
	}
	id, ok := s.reg.lookup(ref)
	if !ok {
		return nil, newAPIError(http.StatusNotFound, "%s", s.reg.notFound(ref))
	}
	start := time.Now()

	s.stopMu.Lock()
	op := s.stops[id]
	final, escalate := false, false
	var name string
	s.reg.update(id, func(d *dataflowRec) bool {
		name = d.Name
		switch {
		case d.final():
			final = true
			return false
		case op != nil:
			escalate = p.force && !d.Stop.Force
			if escalate {
				d.Stop.Force = true
			}
			return escalate
		}
		d.Stop = &stopIntent{At: start, Grace: p.grace, KillAfter: p.killAfter, Force: p.force}
		return true
	})
	if final {
		s.stopMu.Unlock()
		return s.endedStopReply(id), nil
	}
	joined := op != nil
	if !joined {
		op = &stopOp{srv: s, id: id, name: name, p: p, start: start, sent: make(chan struct{}), done: make(chan struct{})}
		s.stops[id] = op
	}
	s.stopMu.Unlock()

	if joined {
		s.log.Info("stop requested again: joining the stop in progress", "dataflow", id, "name", name, "force", escalate)
		if escalate {
			go op.sendStops(s.reg.pendingDaemons(id), true, time.Now().Add(stopAckTimeout))
		}
	} else {
		if err := s.pers.flush(ctx); err != nil {
			s.log.Error("stop intent not persisted", "dataflow", id, "error", err)
		}
		s.log.Info("stopping dataflow", "dataflow", id, "name", name, "grace", p.grace, "timeout", p.timeout, "force", p.force, "detach", p.detach)
		go op.run()
	}

	var rep *proto.APIStopReply
	if p.detach {
		select {
		case <-op.sent:
		case <-ctx.Done():
		}
		rep = s.stopReply(id, start, nil, 0, nil)
	} else {
		wait := time.NewTimer(p.timeout + forceWait + stopAckTimeout)
		defer wait.Stop()
		select {
		case <-op.done:
			r := *op.reply
			if joined {
				r.Elapsed = roundElapsed(time.Since(start))
			}
			rep = &r
		case <-wait.C:
			rep = s.stopReply(id, start, s.reg.pendingDaemons(id), p.timeout, op.unreachedNotes())
		case <-ctx.Done():
			return nil, fmt.Errorf("stop %s: %w", ref, ctx.Err())
		}
	}
	if joined {
		rep.Joined = op.joinedNote(escalate)
	}
	return rep, nil
}

// joinedNote says which stop a later request joined: its grace applies, not the later one's.
func (op *stopOp) joinedNote(escalated bool) string {
	since := "joined the stop in progress since " + op.start.Format(time.TimeOnly)
	switch {
	case op.p.force:
		return since + " (forced)"
	case escalated:
		return fmt.Sprintf("%s (grace %s), now forced by this request", since, op.p.grace)
	}
	return fmt.Sprintf("%s: its grace of %s applies", since, op.p.grace)
}

// run drives one stop to its end: watch the daemons' liveness, send the stops, wait for
// the outcomes until the deadline, then force-kill and wait a little more.
func (op *stopOp) run() {
	s := op.srv
	s.metrics.pendingOps.Inc()
	defer s.metrics.pendingOps.Dec()
	finished := make(chan struct{})
	defer func() {
		s.stopMu.Lock()
		delete(s.stops, op.id)
		s.stopMu.Unlock()
		close(finished)
		close(op.done)
	}()

	daemons := s.reg.pendingDaemons(op.id)
	for _, d := range daemons {
		w, dead := s.live.watch(d, "stop "+op.name)
		if dead != nil {
			s.daemonDead(*dead)
			continue
		}
		go func() {
			defer w.close()
			select {
			case <-w.done():
				if dd := w.death(); dd != nil {
					s.daemonDead(*dd)
				}
			case <-finished:
			}
		}()
	}

	deadline := op.start.Add(op.p.timeout)
	op.sendStops(s.reg.pendingDaemons(op.id), op.p.force, minTime(deadline, time.Now().Add(stopAckTimeout)))
	close(op.sent)

	var unconfirmed []string
	switch {
	case op.waitFinal(deadline):
	case s.ctx.Err() != nil: // shutting down
		unconfirmed = s.reg.pendingDaemons(op.id)
	default:
		unconfirmed = op.escalate()
	}
	op.reply = s.stopReply(op.id, op.start, unconfirmed, op.p.timeout, op.unreachedNotes())
	s.metrics.stopDuration.WithLabelValues(stopResult(op.reply)).Observe(time.Since(op.start).Seconds())
	s.log.Info("stop done", "dataflow", op.id, "name", op.name, "status", op.reply.Status,
		"elapsed", op.reply.Elapsed, "unconfirmed", unconfirmed, "error", op.reply.Error)
}

// escalate force-kills on the daemons still reachable once the deadline passed, waits
// forceWait for their outcomes and returns the daemons that still did not confirm.
func (op *stopOp) escalate() []string {
	s := op.srv
	pending := s.reg.pendingDaemons(op.id)
	var reachable []string
	for _, d := range pending {
		if s.session(d) != nil {
			reachable = append(reachable, d)
		}
	}
	s.log.Warn("stop deadline passed: force-killing", "dataflow", op.id, "name", op.name,
		"timeout", op.p.timeout, "daemons", pending, "reachable", reachable)
	if len(reachable) > 0 {
		end := time.Now().Add(forceWait)
		go op.sendStops(reachable, true, end)
		op.waitFinal(end)
	}
	return s.reg.pendingDaemons(op.id)
}

func stopResult(r *proto.APIStopReply) string {
	switch {
	case len(r.Unconfirmed) > 0:
		return "unconfirmed"
	case r.Error != "":
		return "unclean"
	default:
		return "clean"
	}
}

// sendStops sends the stop to the given daemons in parallel and waits for their acks
// until ackBy. A daemon that is not connected gets the stop when it re-registers.
func (op *stopOp) sendStops(daemons []string, force bool, ackBy time.Time) {
	s := op.srv
	req := proto.StopRequest{DataflowID: op.id, Grace: op.p.grace, KillAfter: op.p.killAfter, Force: force}
	var wg sync.WaitGroup
	for _, d := range daemons {
		sess := s.session(d)
		if sess == nil {
			op.setUnreached(d, "not connected")
			s.log.Info("daemon not connected: the stop waits for it to re-register", "dataflow", op.id, "daemon", d)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithDeadline(s.ctx, ackBy)
			defer cancel()
			sent := time.Now()
			err := sess.request(ctx, proto.TypeStop, req, nil)
			if err == nil {
				op.setUnreached(d, "")
				return
			}
			why := "stop not acknowledged: " + err.Error()
			if errors.Is(err, context.DeadlineExceeded) {
				why = fmt.Sprintf("stop not acknowledged within %s", time.Since(sent).Round(100*time.Millisecond))
			}
			op.setUnreached(d, why)
			s.log.Warn("stop not acknowledged", "dataflow", op.id, "daemon", d, "force", force, "error", err)
		}()
	}
	wg.Wait()
}

// waitFinal waits until every node of the dataflow has an outcome (true) or until.
func (op *stopOp) waitFinal(until time.Time) bool {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	for {
		changed, final := op.srv.reg.watch(op.id)
		if final {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			_, final = op.srv.reg.watch(op.id)
			return final
		case <-op.srv.ctx.Done():
			return false
		}
	}
}

// stopReply is what the coordinator knows of a dataflow's stop. Error is a one-line
// reason when the stop was not clean, empty otherwise. unreached says why daemons did
// not acknowledge the stop (see stopOp.setUnreached); nil when unknown.
func (s *Server) stopReply(id string, start time.Time, unconfirmed []string, timeout time.Duration, unreached map[string]string) *proto.APIStopReply {
	r := &proto.APIStopReply{ID: id, Unconfirmed: unconfirmed, Elapsed: roundElapsed(time.Since(start))}
	var parts []string
	waiting := map[string]int{}
	s.reg.read(id, func(d *dataflowRec) {
		r.Name, r.Status, r.Nodes = d.Name, d.Status, d.apiNodes()
		if d.StartErr != "" {
			parts = append(parts, "start failed: "+d.StartErr)
		}
		if f := d.failureSummary(); f != "" {
			parts = append(parts, f)
		}
		for _, node := range d.Nodes {
			if !node.final() {
				waiting[node.Daemon]++
			}
		}
	})
	for _, daemon := range unconfirmed {
		msg := fmt.Sprintf("daemon %q did not confirm %s within %s", daemon, plural(waiting[daemon], "node"), timeout)
		connected := s.session(daemon) != nil
		why, unacked := unreached[daemon]
		if !connected && !unacked {
			why, unacked = "not connected", true
		}
		// A daemon that is not confirmed dead but cannot be reached over its control
		// link (e.g. a one-way partition that indirect gossip probes go around) keeps
		// its nodes and its stop intent: say so, and that the stop waits for it.
		if note := s.live.unreachableNote(daemon); unacked && note != "" {
			msg += fmt.Sprintf(": %s (%s); the stop is applied when it reconnects", note, why)
		} else if !connected {
			msg += " (not connected: the stop is applied when it re-registers)"
		}
		parts = append(parts, msg)
	}
	r.Error = strings.Join(parts, "; ")
	return r
}

// endedStopReply answers a stop of a dataflow that had already ended: its recorded
// outcomes, with the elapsed time of the stop that ended it (none if none did).
func (s *Server) endedStopReply(id string) *proto.APIStopReply {
	r := s.stopReply(id, time.Now(), nil, 0, nil)
	r.AlreadyEnded, r.Elapsed = true, ""
	s.reg.read(id, func(d *dataflowRec) {
		if d.Stop != nil && d.EndedAt != nil && !d.EndedAt.Before(d.Stop.At) {
			r.Elapsed = roundElapsed(d.EndedAt.Sub(d.Stop.At))
		}
	})
	return r
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func roundElapsed(d time.Duration) string { return d.Round(time.Millisecond).String() }

// pendingDaemons lists the daemons with nodes of the dataflow that have no outcome.
func (r *registry) pendingDaemons(id string) []string {
	var out []string
	r.read(id, func(d *dataflowRec) { out = d.daemons(true) })
	return out
}
