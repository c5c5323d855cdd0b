package daemon

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/proto"
)

// eventSender is the part of a node link the router writes to.
type eventSender interface {
	Notify(typ string, msg any) error
}

// outputKey names one output of one node.
type outputKey struct{ node, output string }

// route is one subscriber input.
type route struct {
	box   *inbox
	input string
}

// router moves a dataflow's messages: from each producer output to the inboxes of its
// local subscribers (and to the RemoteSink when some nodes run elsewhere), and from timers
// to their inputs. Nothing in it blocks: queues drop their oldest message when full.
type router struct {
	df     string
	log    hclog.Logger
	remote RemoteSink
	// hasRemote is set when some nodes of the dataflow run on other daemons.
	hasRemote bool

	mu      sync.Mutex
	inboxes map[string]*inbox
	routes  map[outputKey][]route
	outputs map[string][]string // declared outputs of local producers
	closed  map[outputKey]bool
	timers  map[time.Duration][]route
}

// newRouter builds the routing table of the local nodes of a dataflow. placement maps node
// ids to daemon names; nodes placed on another daemon than self are remote.
func newRouter(df string, specs []proto.NodeSpec, placement map[string]string, self string, remote RemoteSink, log hclog.Logger) *router {
	if remote == nil {
		remote = NoRemote{}
	}
	r := &router{
		df:      df,
		log:     log,
		remote:  remote,
		inboxes: map[string]*inbox{},
		routes:  map[outputKey][]route{},
		outputs: map[string][]string{},
		closed:  map[outputKey]bool{},
		timers:  map[time.Duration][]route{},
	}
	local := map[string]bool{}
	for _, s := range specs {
		local[s.ID] = true
		r.outputs[s.ID] = append([]string(nil), s.Outputs...)
	}
	for n, d := range placement {
		if d != self && !local[n] {
			r.hasRemote = true
		}
	}
	for _, s := range specs {
		box := newInbox(s.ID)
		r.inboxes[s.ID] = box
		for _, in := range s.Inputs {
			box.addInput(in.ID, in.QueueSize)
			rt := route{box: box, input: in.ID}
			switch {
			case in.Timer > 0:
				r.timers[in.Timer] = append(r.timers[in.Timer], rt)
			default:
				// Local producers route here; remote producers are fed by publish too,
				// through the daemon link that brings their data.
				k := outputKey{in.Node, in.Output}
				r.routes[k] = append(r.routes[k], rt)
			}
		}
	}
	return r
}

// publish delivers one output message to every subscriber. Messages on an output that
// was closed, or that the producer does not declare, are dropped.
func (r *router) publish(producer, output string, data []byte, md proto.Metadata) int {
	k := outputKey{producer, output}
	r.mu.Lock()
	if r.closed[k] {
		r.mu.Unlock()
		return 0
	}
	if decl, ok := r.outputs[producer]; ok && !contains(decl, output) {
		r.mu.Unlock()
		r.log.Debug("output not declared, dropped", "node", producer, "output", output)
		return 0
	}
	routes := r.routes[k]
	_, local := r.outputs[producer]
	r.mu.Unlock()
	n := 0
	for _, rt := range routes {
		if rt.box.push(rt.input, message{data: data, md: md}) {
			n++
		}
	}
	if local && r.hasRemote {
		r.remote.Output(r.df, producer, output, data, md)
	}
	return n
}

// closeOutputs ends some outputs of a producer (all of them when outputs is empty): each
// subscriber input gets InputClosed after the data already queued for it.
func (r *router) closeOutputs(producer string, outputs []string) {
	r.mu.Lock()
	if len(outputs) == 0 {
		outputs = r.outputs[producer]
	}
	var todo []route
	var closedNow []string
	for _, o := range outputs {
		k := outputKey{producer, o}
		if r.closed[k] {
			continue
		}
		r.closed[k] = true
		closedNow = append(closedNow, o)
		todo = append(todo, r.routes[k]...)
	}
	_, local := r.outputs[producer]
	r.mu.Unlock()
	for _, rt := range todo {
		rt.box.closeInput(rt.input)
	}
	if local && r.hasRemote && len(closedNow) > 0 {
		r.remote.OutputsClosed(r.df, producer, closedNow)
	}
}

// attach starts delivering a node's inbox to its link until done is closed or a write
// fails. It returns at once.
func (r *router) attach(node string, link eventSender, done <-chan struct{}) {
	r.mu.Lock()
	box := r.inboxes[node]
	r.mu.Unlock()
	if box == nil {
		return
	}
	go runSender(box, link, done, r.log.With("node", node))
}

// detach discards a node's pending inputs: the node has ended.
func (r *router) detach(node string) {
	r.mu.Lock()
	box := r.inboxes[node]
	r.mu.Unlock()
	if box != nil {
		box.drop()
	}
}

// inbox returns a node's inbox (nil for unknown nodes).
func (r *router) inbox(node string) *inbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inboxes[node]
}

// timerRoutes returns the subscribers of each timer interval.
func (r *router) timerRoutes() map[time.Duration][]route {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[time.Duration][]route, len(r.timers))
	for k, v := range r.timers {
		out[k] = append([]route(nil), v...)
	}
	return out
}

// runSender drains an inbox into a node link, one event at a time.
func runSender(box *inbox, link eventSender, done <-chan struct{}, log hclog.Logger) {
	for {
		d, ok := box.take()
		if !ok {
			select {
			case <-box.wake:
				continue
			case <-done:
				return
			}
		}
		if err := link.Notify(d.typ, d.msg); err != nil {
			log.Debug("node link write failed, sender stops", "error", err)
			return
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
