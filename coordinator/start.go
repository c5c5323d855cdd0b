package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/proto"
)

// startDataflow parses, places and spawns a dataflow. It answers once every involved
// daemon has acknowledged its nodes; on any failure what was spawned is stopped and the
// dataflow is recorded as failed.
func (s *Server) startDataflow(ctx context.Context, req proto.APIStartRequest) (*proto.APIStartReply, error) {
	if strings.TrimSpace(req.Descriptor) == "" {
		return nil, newAPIError(http.StatusBadRequest, "the descriptor is empty")
	}
	if err := checkDataflowName(req.Name); err != nil {
		return nil, newAPIError(http.StatusBadRequest, "%s", err)
	}
	file := req.Path
	if file == "" {
		file = "dataflow.yml"
	}
	desc, err := dataflow.Parse([]byte(req.Descriptor), file)
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "%s", err.Error())
	}
	placed, err := s.place(desc)
	if errors.Is(err, errNoDaemon) {
		return nil, newAPIError(http.StatusServiceUnavailable, "%s", err)
	} else if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "%s", err)
	}

	now := time.Now()
	rec := &dataflowRec{
		ID:         uuid.NewString(),
		Name:       req.Name,
		Descriptor: req.Descriptor,
		Path:       req.Path,
		WorkingDir: req.WorkingDir,
		StartedAt:  now,
	}
	for _, n := range desc.Nodes {
		sess := placed[n.ID]
		rec.Nodes = append(rec.Nodes, &nodeRec{
			ID: n.ID, Machine: sess.info.Machine, Daemon: sess.info.Name,
			Status: proto.NodePending, Since: now,
		})
	}
	if err := s.reg.add(rec, generateName); errors.Is(err, errNameInUse) {
		return nil, newAPIError(http.StatusConflict, "%s", err)
	} else if err != nil {
		return nil, fmt.Errorf("record dataflow: %w", err)
	}
	log := s.log.With("dataflow", rec.ID, "name", rec.Name)
	reqs := s.spawnRequests(rec, desc, placed, req.WorkingDir)
	log.Info("starting dataflow", "nodes", len(desc.Nodes), "daemons", len(reqs))

	s.metrics.pendingOps.Inc()
	res := s.spawnAll(ctx, rec.Name, reqs)
	s.metrics.pendingOps.Dec()
	if res.err != nil {
		log.Warn("start failed: stopping what was spawned", "error", res.err, "daemon", res.failed)
		s.abortStart(rec.ID, reqs, res)
		return nil, res.err
	}
	log.Info("dataflow started")
	return &proto.APIStartReply{ID: rec.ID, Name: rec.Name}, nil
}

// spawnRequests builds one SpawnRequest per involved daemon.
func (s *Server) spawnRequests(rec *dataflowRec, desc *dataflow.Descriptor, placed map[string]*session, wd string) map[string]*spawnJob {
	placement := map[string]string{}
	addrs := map[string]string{}
	for id, sess := range placed {
		placement[id] = sess.info.Name
		addrs[sess.info.Name] = sess.info.ControlAddr
	}
	jobs := map[string]*spawnJob{}
	for _, n := range desc.Nodes {
		sess := placed[n.ID]
		job := jobs[sess.info.Name]
		if job == nil {
			job = &spawnJob{sess: sess, req: proto.SpawnRequest{
				DataflowID: rec.ID, Name: rec.Name, Placement: placement, DaemonAddrs: addrs,
			}}
			jobs[sess.info.Name] = job
		}
		job.req.Nodes = append(job.req.Nodes, nodeSpec(desc, n, wd))
	}
	for daemon, subs := range remoteSubscriptions(desc, placement) {
		if job := jobs[daemon]; job != nil {
			job.req.Subscriptions = subs
		}
	}
	return jobs
}

// remoteSubscriptions lists, per producer daemon, the outputs of its nodes that have
// consumers on other daemons, and those daemons: each such output is sent once to each.
func remoteSubscriptions(desc *dataflow.Descriptor, placement map[string]string) map[string][]proto.RemoteSubscription {
	type key struct{ node, output string }
	daemons := map[key][]string{}
	var order []key
	for _, n := range desc.Nodes {
		for _, in := range n.Inputs {
			if in.Source.Kind != dataflow.SourceNode {
				continue
			}
			src, dst := placement[in.Source.Node], placement[n.ID]
			if src == "" || src == dst {
				continue
			}
			k := key{in.Source.Node, in.Source.Output}
			if _, ok := daemons[k]; !ok {
				order = append(order, k)
			}
			if !slices.Contains(daemons[k], dst) {
				daemons[k] = append(daemons[k], dst)
			}
		}
	}
	out := map[string][]proto.RemoteSubscription{}
	for _, k := range order {
		src := placement[k.node]
		out[src] = append(out[src], proto.RemoteSubscription{Node: k.node, Output: k.output, Daemons: daemons[k]})
	}
	return out
}

// nodeSpec is what a daemon needs to run node n.
func nodeSpec(desc *dataflow.Descriptor, n *dataflow.Node, wd string) proto.NodeSpec {
	dir := wd
	if d := n.Deploy.WorkingDir; d != "" {
		dir = d
		if !filepath.IsAbs(d) && wd != "" {
			dir = filepath.Join(wd, d)
		}
	}
	spec := proto.NodeSpec{
		ID:         n.ID,
		Path:       n.ResolvedPath(wd),
		Args:       n.Args,
		Env:        desc.EnvFor(n),
		WorkingDir: dir,
		Outputs:    n.Outputs,
	}
	for _, in := range n.Inputs {
		is := proto.InputSpec{ID: in.ID, QueueSize: in.QueueSize}
		switch in.Source.Kind {
		case dataflow.SourceTimer:
			is.Timer = in.Source.Interval
		case dataflow.SourceNode:
			is.Node, is.Output = in.Source.Node, in.Source.Output
		}
		spec.Inputs = append(spec.Inputs, is)
	}
	return spec
}

// spawnJob is one daemon's share of a start.
type spawnJob struct {
	sess *session
	req  proto.SpawnRequest
}

// spawnResult is how the spawns of a start went.
type spawnResult struct {
	err     error             // the first failure (nil: every daemon acknowledged)
	failed  string            // the daemon of that failure
	refusal map[string]string // the daemons that refused their share (they started none): why
	acked   map[string]bool   // the daemons that acknowledged (their nodes run)
}

// refusalGather is how long the other daemons still get to answer after a first failure,
// so that every daemon's refusal (they come at once) is told, not only the first.
const refusalGather = 500 * time.Millisecond

// spawnAll sends every spawn request in parallel and waits for the acks, within
// StartTimeout. A confirmed death of a daemon fails its request at once. The first
// failure cancels the others refusalGather later.
func (s *Server) spawnAll(ctx context.Context, name string, jobs map[string]*spawnJob) spawnResult {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		res = spawnResult{acked: map[string]bool{}, refusal: map[string]string{}}
		wg  sync.WaitGroup
	)
	for daemon, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused, err := s.spawnOne(ctx, name, daemon, job)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				res.acked[daemon] = true
				return
			}
			if refused {
				res.refusal[daemon] = strings.TrimPrefix(err.Error(), "start: ")
			}
			if res.err == nil {
				res.err, res.failed = err, daemon
				time.AfterFunc(refusalGather, cancel)
			}
		}()
	}
	wg.Wait()
	if len(res.refusal) > 1 {
		// Every refusal, one per line, in the order of the daemons' names.
		lines := make([]string, 0, len(res.refusal))
		for _, d := range slices.Sorted(maps.Keys(res.refusal)) {
			lines = append(lines, res.refusal[d])
		}
		res.err = newAPIError(httpStatus(res.err), "start: %s", strings.Join(lines, "\n"))
	}
	return res
}

// linkVerdictWait bounds the wait for a death verdict after a daemon's link broke during
// a request: the detector's port check answers within it for a crashed process.
const linkVerdictWait = 1500 * time.Millisecond

// spawnOne sends one daemon its share; refused reports that the daemon answered with a
// refusal (it started none of its nodes).
func (s *Server) spawnOne(ctx context.Context, name, daemon string, job *spawnJob) (refused bool, err error) {
	w, dead := s.live.watch(daemon, "start "+name)
	if dead != nil {
		s.daemonDead(*dead)
		return false, newAPIError(http.StatusServiceUnavailable, "start: %s", dead.describe())
	}
	defer w.close()
	rctx, cancel := w.context(ctx)
	defer cancel()
	var ack proto.Ack
	err = job.sess.request(rctx, proto.TypeSpawn, job.req, &ack)
	if err == nil {
		return false, nil
	}
	var re *proto.RemoteError
	if w.death() == nil && !errors.As(err, &re) && ctx.Err() == nil {
		// The link broke: a crashed process is confirmed dead within a moment (its port
		// refuses). Waiting that moment names the death instead of the bare link error.
		t := time.NewTimer(linkVerdictWait)
		select {
		case <-w.done():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if d := w.death(); d != nil {
		s.daemonDead(*d) // its nodes are lost, not "start aborted"
		return false, newAPIError(http.StatusServiceUnavailable, "start: %s", d.describe())
	}
	where := fmt.Sprintf("daemon %q (machine %s)", daemon, job.sess.info.Machine)
	switch {
	case errors.As(err, &re):
		return true, newAPIError(http.StatusBadGateway, "start: %s (refused by %s)", re.Msg, where)
	case errors.Is(err, context.DeadlineExceeded):
		return false, newAPIError(http.StatusGatewayTimeout, "start: %s did not acknowledge its nodes within %s%s", where, s.cfg.StartTimeout, s.unreachableSuffix(daemon))
	case errors.Is(err, context.Canceled):
		return false, newAPIError(http.StatusServiceUnavailable, "start: cancelled while waiting for %s", where)
	default:
		return false, newAPIError(http.StatusBadGateway, "start: %s: %v", where, err)
	}
}

// abortStart records a failed start and force-stops the dataflow on every daemon it
// was sent to (a spawn that timed out may have started some nodes). Each node says what
// became of it: not started (its daemon refused: why, and whether for this node or
// another of its share), killed (its daemon had started it), or start aborted (its spawn
// was cut short); each names the daemon that failed.
func (s *Server) abortStart(id string, jobs map[string]*spawnJob, res spawnResult) {
	why := strings.ReplaceAll(strings.TrimPrefix(res.err.Error(), "start: "), "\n", "; ")
	s.reg.update(id, func(d *dataflowRec) bool {
		d.StartErr = why // the reason says "start failed: "
		now := time.Now()
		names := func(refusal, node string) bool { return strings.Contains(refusal, fmt.Sprintf("node %q", node)) }
		namesOther := func(refusal string, n *nodeRec) bool {
			return slices.ContainsFunc(d.Nodes, func(o *nodeRec) bool { return o.Daemon == n.Daemon && o.ID != n.ID && names(refusal, o.ID) })
		}
		for _, n := range d.Nodes {
			if n.final() {
				continue
			}
			status, outcome := proto.NodeFailed, fmt.Sprintf("start aborted (daemon %s failed its share)", res.failed)
			refusal, refused := res.refusal[n.Daemon]
			switch {
			case refused && (names(refusal, n.ID) || !namesOther(refusal, n)):
				outcome = "not started: " + refusal
			case refused:
				outcome = fmt.Sprintf("not started: daemon %s refused its share for another node (%s)", n.Daemon, refusal)
			case n.Daemon == res.failed:
				outcome = "start failed: " + why
			case res.acked[n.Daemon]:
				status, outcome = proto.NodeKilled, fmt.Sprintf("killed (start aborted: daemon %s failed its share)", res.failed)
			}
			n.Status, n.Outcome, n.Since, n.Inferred = status, outcome, now, true
		}
		return true
	})
	for daemon, job := range jobs {
		go func() {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			defer cancel()
			stop := proto.StopRequest{DataflowID: id, Force: true}
			if err := job.sess.request(ctx, proto.TypeStop, stop, nil); err != nil {
				s.log.Debug("stop after a failed start not delivered", "daemon", daemon, "dataflow", id, "error", err)
			}
		}()
	}
}
