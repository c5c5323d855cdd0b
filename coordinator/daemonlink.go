package coordinator

import (
	"context"
	"slices"
	"time"

	"github.com/doractl/doractl/proto"
)

// deadNoticeTimeout bounds the delivery of one DaemonDead notice.
const deadNoticeTimeout = 5 * time.Second

// notifyDaemonDead tells peers (deadNoticeTargets: the other daemons of every unfinished
// dataflow that had nodes on a dead or departed daemon) about its death, so that they close the inputs its nodes fed:
// consumers get InputClosed instead of waiting for data that will never come. It returns
// at once; the notices are sent in the background.
func (s *Server) notifyDaemonDead(d death, peers map[string][]string) {
	for peer, dfs := range peers {
		sess := s.session(peer)
		if sess == nil {
			s.log.Debug("daemon death not forwarded: no link", "dead", d.Daemon, "daemon", peer)
			continue
		}
		req := proto.DaemonDead{Name: d.Daemon, DataflowIDs: dfs, Reason: d.describe()}
		go func() {
			ctx, cancel := context.WithTimeout(s.ctx, deadNoticeTimeout)
			defer cancel()
			if err := sess.request(ctx, proto.TypeDaemonDead, req, nil); err != nil {
				s.log.Warn("daemon death not delivered", "dead", d.Daemon, "daemon", peer, "error", err)
			}
		}()
	}
}

// deadNoticeTargets maps every other daemon of the unfinished dataflows with nodes on dead
// to those dataflows.
func (s *Server) deadNoticeTargets(dead string) map[string][]string {
	out := map[string][]string{}
	s.reg.ids(func(rec *dataflowRec) bool {
		if rec.final() {
			return false
		}
		onDead := slices.ContainsFunc(rec.Nodes, func(n *nodeRec) bool { return n.Daemon == dead })
		if !onDead {
			return false
		}
		for _, n := range rec.Nodes {
			if n.Daemon != dead && !slices.Contains(out[n.Daemon], rec.ID) {
				out[n.Daemon] = append(out[n.Daemon], rec.ID)
			}
		}
		return false
	})
	return out
}
