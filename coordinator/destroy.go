package coordinator

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/doractl/doractl/proto"
)

// destroyAckTimeout bounds the wait for a daemon to acknowledge a destroy.
const destroyAckTimeout = 5 * time.Second

// destroy stops every dataflow that is not final (in parallel, with the request's grace),
// then tells every daemon to stop everything and exit. The caller answers and then the
// server's Run returns.
func (s *Server) destroy(ctx context.Context, req proto.APIDestroyRequest) (*proto.APIDestroyReply, error) {
	p, err := s.parseStop(proto.APIStopRequest{Grace: req.Grace})
	if err != nil {
		return nil, err
	}
	ids := s.reg.ids(func(d *dataflowRec) bool { return !d.final() })
	s.log.Info("destroy: stopping every dataflow and daemon", "dataflows", len(ids), "grace", p.grace)
	rep := &proto.APIDestroyReply{Dataflows: []proto.APIStopReply{}, Daemons: []string{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.stopDataflow(ctx, id, proto.APIStopRequest{Grace: req.Grace})
			if err != nil {
				r = &proto.APIStopReply{ID: id, Error: err.Error()}
			}
			mu.Lock()
			rep.Dataflows = append(rep.Dataflows, *r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, newAPIError(http.StatusServiceUnavailable, "destroy interrupted: %v", ctx.Err())
	}
	sort.Slice(rep.Dataflows, func(i, j int) bool { return rep.Dataflows[i].Name < rep.Dataflows[j].Name })

	for _, sess := range s.connected() {
		wg.Add(1)
		rep.Daemons = append(rep.Daemons, sess.info.Name)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, destroyAckTimeout)
			defer cancel()
			if err := sess.request(dctx, proto.TypeDestroy, proto.DestroyRequest{Grace: p.grace}, nil); err != nil {
				s.log.Warn("destroy not acknowledged", "daemon", sess.info.Name, "error", err)
			}
		}()
	}
	wg.Wait()
	s.forgetDaemons(rep.Daemons)
	return rep, nil
}

// forgetDaemons records the daemons told to destroy as left, and forgets every known
// daemon from the store: the next coordinator on this data dir starts a new cluster.
func (s *Server) forgetDaemons(told []string) {
	s.forgotten.Store(true)
	now := time.Now()
	s.sessMu.Lock()
	for _, name := range told {
		if info, ok := s.known[name]; ok && info.LeftAt == nil {
			info.LeftAt = &now
			s.known[name] = info
		}
	}
	names := make([]string, 0, len(s.known))
	for name := range s.known {
		names = append(names, name)
	}
	s.sessMu.Unlock()
	if s.st == nil || len(names) == 0 {
		return
	}
	if err := s.st.deleteDaemons(names); err != nil {
		s.log.Warn("forgetting the destroyed cluster's daemons", "error", err)
	}
}
