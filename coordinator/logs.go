package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/doractl/doractl/proto"
)

const (
	// logsWait is the long-poll wait of each logs request while following.
	logsWait = time.Second
	// logsChunk is the most bytes asked per logs request.
	logsChunk = 256 << 10
	// logsRetry is the pause before asking again after a failed logs request.
	logsRetry = 250 * time.Millisecond
)

// logTarget is the node whose log is read, and where it runs.
type logTarget struct {
	dataflowID, dataflowName, node, daemon string
	machine, status                        string // the node's machine and status when resolved
}

// resolveLogs finds a node of a dataflow (404 naming what is unknown).
func (s *Server) resolveLogs(ref, node string) (logTarget, error) {
	id, ok := s.reg.lookup(ref)
	if !ok {
		return logTarget{}, newAPIError(http.StatusNotFound, "%s", s.reg.notFound(ref))
	}
	t := logTarget{dataflowID: id, node: node}
	found, outcome := false, ""
	s.reg.read(id, func(d *dataflowRec) {
		t.dataflowName = d.Name
		if n := d.node(node); n != nil {
			t.daemon, t.machine, t.status, outcome, found = n.Daemon, n.Machine, n.Status, n.Outcome, true
		}
	})
	if !found {
		return t, newAPIError(http.StatusNotFound, "dataflow %q has no node %q", ref, node)
	}
	// Refused, or its daemon never acknowledged the spawn: the node did not start.
	if why, ok := strings.CutPrefix(outcome, "not started: "); ok || strings.HasPrefix(outcome, "start aborted") {
		return t, newAPIError(http.StatusNotFound, "node %q of dataflow %q has no log: it never started (%s)", node, t.dataflowName, why)
	}
	return t, nil
}

// fileNote says where the node's log file is when its daemon cannot serve it.
func (t logTarget) fileNote() string {
	return fmt.Sprintf("the log file stays on machine %s, in that daemon's state folder under dataflows/%s/%s.log", t.machine, t.dataflowID, t.node)
}

// flushWriter is the response the log is streamed to.
type flushWriter interface {
	io.Writer
	Flush()
}

// lineWriter remembers whether what was written ends mid-line, so that the line ending
// a stream starts on a line of its own without adding an empty one.
type lineWriter struct {
	flushWriter
	midLine bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n, err := w.flushWriter.Write(p)
	if n > 0 {
		w.midLine = p[n-1] != '\n'
	}
	return n, err
}

// endLine ends a partial last line.
func (w *lineWriter) endLine() {
	if w.midLine {
		_, _ = w.Write([]byte("\n"))
	}
}

// streamLogs proxies a node's log from its daemon to w: until caught up, or with follow
// until the node has ended and its log is read. A confirmed death of the daemon ends the
// stream with a line saying so. start is called before the first byte is written, so
// that errors found before it can still be answered as API errors.
func (s *Server) streamLogs(ctx context.Context, t logTarget, tail int, follow bool, fw flushWriter, start func()) error {
	w := &lineWriter{flushWriter: fw}
	wch, dead := s.live.watch(t.daemon, fmt.Sprintf("logs %s/%s", t.dataflowName, t.node))
	if dead != nil {
		return newAPIError(http.StatusServiceUnavailable, "logs of node %q (%s) unavailable: %s; %s", t.node, t.status, dead.describe(), t.fileNote())
	}
	defer wch.close()
	s.metrics.pendingOps.Inc()
	defer s.metrics.pendingOps.Dec()

	started := false
	begin := func() {
		if !started {
			started = true
			start()
		}
	}
	req := proto.LogsRequest{DataflowID: t.dataflowID, NodeID: t.node, Max: logsChunk}
	if tail > 0 {
		req.Offset, req.Tail = -1, tail
	}
	if follow {
		req.Wait = logsWait
	}
	for {
		sess, changed := s.sessionOrWait(t.daemon)
		if sess == nil {
			if !follow {
				if !started {
					return newAPIError(http.StatusServiceUnavailable, "logs of node %q (%s) unavailable: %s; %s", t.node, t.status, s.absence(t.daemon), t.fileNote())
				}
				return nil
			}
			begin()
			select {
			case <-changed:
				continue
			case <-wch.done():
				return s.endWithDeath(w, wch)
			case <-ctx.Done():
				return nil
			}
		}
		var rep proto.LogsReply
		rctx, cancel := wch.context(ctx)
		rctx, cancelT := context.WithTimeout(rctx, req.Wait+5*time.Second)
		err := sess.request(rctx, proto.TypeLogs, req, &rep)
		cancelT()
		cancel()
		if d := wch.death(); d != nil {
			begin()
			return s.endWithDeath(w, wch)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var re *proto.RemoteError
			if errors.As(err, &re) || !follow {
				note := ""
				if re == nil {
					note = s.unreachableSuffix(t.daemon)
				}
				if !started {
					if re == nil {
						return newAPIError(http.StatusBadGateway, "logs of node %q (%s) from daemon %q: %v%s; %s", t.node, t.status, t.daemon, err, note, t.fileNote())
					}
					return newAPIError(http.StatusBadGateway, "logs of %q from daemon %q: %v%s", t.node, t.daemon, err, note)
				}
				w.endLine()
				fmt.Fprintf(w, "%sdaemon %q (node %q): %v%s --\n", proto.LogsEndMarker, t.daemon, t.node, err, note)
				w.Flush()
				return nil
			}
			s.log.Debug("logs request failed: retrying", "daemon", t.daemon, "node", t.node, "error", err)
			select {
			case <-time.After(logsRetry):
			case <-wch.done():
			case <-ctx.Done():
				return nil
			}
			continue
		}
		begin()
		if len(rep.Data) > 0 {
			if _, err := w.Write(rep.Data); err != nil {
				return nil // the client went away
			}
			w.Flush()
		}
		req.Offset, req.Tail = rep.Next, 0
		// Without follow a short chunk means the daemon read to the end of the log as
		// it was then: lines written since are not part of this answer (a tail of 1
		// line stays 1 line on a live log).
		if rep.Ended || (!follow && len(rep.Data) < req.Max) {
			return nil
		}
	}
}

// endWithDeath writes the line that ends a stream whose daemon was confirmed dead.
func (s *Server) endWithDeath(w *lineWriter, wch *daemonWatch) error {
	d := wch.death()
	if d == nil {
		return nil
	}
	s.daemonDead(*d)
	w.endLine()
	fmt.Fprintf(w, "%s%s --\n", proto.LogsEndMarker, d.describe())
	w.Flush()
	return nil
}

// absence says why a daemon has no control link: it left, was confirmed dead, is not a
// member of this cluster (any more), or is not connected although not confirmed dead.
func (s *Server) absence(daemon string) string {
	v, since, _ := s.live.state(daemon)
	switch v {
	case proto.MemberLeft:
		return fmt.Sprintf("daemon %q left at %s", daemon, since.Format(time.TimeOnly))
	case proto.MemberDead:
		return fmt.Sprintf("daemon %q was confirmed dead at %s", daemon, since.Format(time.TimeOnly))
	case "":
		return fmt.Sprintf("daemon %q is not a member of this cluster", daemon)
	}
	return fmt.Sprintf("daemon %q is not connected%s", daemon, s.unreachableSuffix(daemon))
}

// unreachableSuffix is ": NOTE" for a daemon that is not confirmed dead but does not
// answer over its control link (see liveness.unreachableNote), else "".
func (s *Server) unreachableSuffix(daemon string) string {
	if note := s.live.unreachableNote(daemon); note != "" {
		return ": " + note
	}
	return ""
}
