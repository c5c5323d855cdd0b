package coordinator

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/doractl/doractl/proto"
)

// The Go form of the control API, for in-process use (doractl run). The HTTP handlers
// call these same methods: there is one implementation of each operation.

// StartDataflow validates, places and spawns a dataflow (POST /v1/dataflows). It returns
// once every daemon has acknowledged its nodes.
func (s *Server) StartDataflow(ctx context.Context, req proto.APIStartRequest) (*proto.APIStartReply, error) {
	return s.startDataflow(ctx, req)
}

// StopDataflow stops a dataflow by id or name (POST /v1/dataflows/{ref}/stop). A second
// call while a stop is in progress joins it, and escalates it when it asks for Force.
func (s *Server) StopDataflow(ctx context.Context, ref string, req proto.APIStopRequest) (*proto.APIStopReply, error) {
	return s.stopDataflow(ctx, ref, req)
}

// Dataflow returns a dataflow by id or name (GET /v1/dataflows/{ref}).
func (s *Server) Dataflow(ref string) (proto.Dataflow, error) {
	id, ok := s.reg.lookup(ref)
	if !ok {
		return proto.Dataflow{}, newAPIError(http.StatusNotFound, "%s", s.reg.notFound(ref))
	}
	d, ok := s.reg.view(id)
	if !ok {
		return proto.Dataflow{}, newAPIError(http.StatusNotFound, "no dataflow %q", ref)
	}
	return d, nil
}

// Dataflows lists every dataflow, oldest first (GET /v1/dataflows).
func (s *Server) Dataflows() []proto.Dataflow { return s.reg.list() }

// DataflowChanged returns a channel closed at the next change of the dataflow's record
// (a node status, the stop intent...); it is closed already for an unknown dataflow.
func (s *Server) DataflowChanged(ref string) <-chan struct{} {
	id, ok := s.reg.lookup(ref)
	if !ok {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	ch, _ := s.reg.watch(id)
	return ch
}

// WaitDaemon blocks until the daemon called name has registered, or ctx ends.
func (s *Server) WaitDaemon(ctx context.Context, name string) error {
	for {
		sess, changed := s.sessionOrWait(name)
		if sess != nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("daemon %q did not register: %w", name, context.Cause(ctx))
		}
	}
}

// StreamLogs copies a node's log to w (GET /v1/dataflows/{ref}/logs/{node}): what is
// there, and with follow until the node has ended and its log is read, or ctx ends.
func (s *Server) StreamLogs(ctx context.Context, ref, node string, follow bool, w io.Writer) error {
	t, err := s.resolveLogs(ref, node)
	if err != nil {
		return err
	}
	fw, ok := w.(flushWriter)
	if !ok {
		fw = nopFlusher{w}
	}
	return s.streamLogs(ctx, t, 0, follow, fw, func() {})
}

// nopFlusher is a flushWriter over a plain writer.
type nopFlusher struct{ io.Writer }

func (nopFlusher) Flush() {}
