package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/doractl/doractl/proto"
)

// errNameInUse is returned by registry.add when a non-final dataflow has the name.
var errNameInUse = errors.New("dataflow name in use")

// registry holds every dataflow the coordinator knows, running or ended.
// Nothing that waits (network, store) is ever done while holding mu.
type registry struct {
	mu    sync.Mutex
	byID  map[string]*dataflowRec
	dirty func(id string) // called (under mu) when a record must be persisted
	now   func() time.Time
}

func newRegistry(dirty func(id string)) *registry {
	if dirty == nil {
		dirty = func(string) {}
	}
	return &registry{byID: map[string]*dataflowRec{}, dirty: dirty, now: time.Now}
}

// load adds records read from the store.
func (r *registry) load(recs []*dataflowRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range recs {
		d.changed = make(chan struct{})
		r.byID[d.ID] = d
	}
}

// add inserts a new record. With an empty name it takes the first name from gen that is
// free; a given name must not belong to a non-final dataflow.
func (r *registry) add(d *dataflowRec, gen func(attempt int) string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Name == "" {
		// A generated name is one no dataflow has had, finished ones included, so that it
		// names one dataflow for good.
		for i := 0; ; i++ {
			name := gen(i)
			if !r.nameUsedLocked(name) {
				d.Name = name
				break
			}
		}
	} else if other := r.activeByNameLocked(d.Name); other != nil {
		return fmt.Errorf("%w: %q is the name of dataflow %s (%s)", errNameInUse, d.Name, other.ID, other.Status)
	}
	d.changed = make(chan struct{})
	d.refresh(r.now())
	r.byID[d.ID] = d
	r.dirty(d.ID)
	return nil
}

func (r *registry) nameUsedLocked(name string) bool {
	for _, d := range r.byID {
		if d.Name == name {
			return true
		}
	}
	return false
}

func (r *registry) activeByNameLocked(name string) *dataflowRec {
	for _, d := range r.byID {
		if d.Name == name && !d.final() {
			return d
		}
	}
	return nil
}

// lookup resolves a dataflow reference: an id, or a name (the non-final dataflow with
// that name, else the most recently started one).
func (r *registry) lookup(ref string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.byID[ref]; ok {
		return d.ID, true
	}
	var best *dataflowRec
	for _, d := range r.byID {
		if d.Name != ref {
			continue
		}
		switch {
		case best == nil:
			best = d
		case best.final() && !d.final():
			best = d
		case best.final() == d.final() && d.StartedAt.After(best.StartedAt):
			best = d
		}
	}
	if best != nil {
		return best.ID, true
	}
	return r.byIDPrefix(ref)
}

// minIDPrefix is the shortest UUID prefix that names a dataflow.
const minIDPrefix = 4

// byIDPrefix finds the one dataflow whose UUID starts with ref (r.mu held), as
// `doractl stop 0b6e` for 0b6e5c1a-…; no match or several is not found.
func (r *registry) byIDPrefix(ref string) (string, bool) {
	if len(ref) < minIDPrefix || strings.Trim(strings.ToLower(ref), "0123456789abcdef-") != "" {
		return "", false
	}
	ref = strings.ToLower(ref)
	found := ""
	for id := range r.byID {
		if strings.HasPrefix(id, ref) {
			if found != "" {
				return "", false
			}
			found = id
		}
	}
	return found, found != ""
}

// notFound says why ref names no dataflow: unknown, a UUID prefix too short, or one
// that starts several UUIDs (named, so the user can pick).
func (r *registry) notFound(ref string) string {
	msg := fmt.Sprintf("no dataflow %q", ref)
	low := strings.ToLower(ref)
	if ref == "" || strings.Trim(low, "0123456789abcdef-") != "" {
		return msg
	}
	r.mu.Lock()
	var matches []string
	for id, d := range r.byID {
		if strings.HasPrefix(id, low) {
			matches = append(matches, fmt.Sprintf("%s (%s)", id, d.Name))
		}
	}
	r.mu.Unlock()
	sort.Strings(matches)
	switch {
	case len(matches) == 0:
		return msg
	case len(ref) < minIDPrefix:
		return fmt.Sprintf("%s: a UUID prefix needs at least %d characters", msg, minIDPrefix)
	}
	const shown = 5
	n, more := len(matches), ""
	if n > shown {
		matches, more = matches[:shown], fmt.Sprintf(" and %d more", n-shown)
	}
	return fmt.Sprintf("%s: the prefix starts %d UUIDs: %s%s; give more characters", msg, n, strings.Join(matches, ", "), more)
}

// view is the API shape of one dataflow.
func (r *registry) view(id string) (proto.Dataflow, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[id]
	if !ok {
		return proto.Dataflow{}, false
	}
	return d.apiView(), true
}

// list is every dataflow, oldest first.
func (r *registry) list() []proto.Dataflow {
	r.mu.Lock()
	out := make([]proto.Dataflow, 0, len(r.byID))
	for _, d := range r.byID {
		out = append(out, d.apiView())
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// read runs fn on a record under the lock, for reads only.
func (r *registry) read(id string, fn func(d *dataflowRec)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[id]
	if ok {
		fn(d)
	}
	return ok
}

// update runs fn on a record under the lock; when fn reports a change the status is
// derived again, waiters are woken and the record is persisted.
func (r *registry) update(id string, fn func(d *dataflowRec) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[id]
	if !ok {
		return false
	}
	if fn(d) {
		r.changedLocked(d)
	}
	return true
}

func (r *registry) changedLocked(d *dataflowRec) {
	d.refresh(r.now())
	d.notify()
	r.dirty(d.ID)
}

// watch returns a channel closed at the next change of the dataflow, and whether the
// dataflow's nodes all have an outcome.
func (r *registry) watch(id string) (<-chan struct{}, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[id]
	if !ok {
		ch := make(chan struct{})
		close(ch)
		return ch, true
	}
	return d.changed, d.allNodesFinal()
}

func (d *dataflowRec) allNodesFinal() bool {
	for _, n := range d.Nodes {
		if !n.final() {
			return false
		}
	}
	return true
}

// statusResult says what applyStatus did with a report.
type statusResult int

const (
	statusApplied statusResult = iota
	statusIgnored
	statusUnknownDataflow
)

// applyStatus records a node status reported by daemon.
func (r *registry) applyStatus(daemon string, ns proto.NodeStatus) (statusResult, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[ns.DataflowID]
	if !ok {
		return statusUnknownDataflow, "unknown dataflow"
	}
	n := d.node(ns.NodeID)
	switch {
	case n == nil:
		return statusIgnored, "unknown node"
	case n.Daemon != daemon:
		return statusIgnored, fmt.Sprintf("node is placed on daemon %q", n.Daemon)
	case n.final() && (!n.Inferred || d.final() && !n.Unreported):
		return statusIgnored, "node already has an outcome: " + n.outcomeText()
	case n.final() && d.final() && !proto.IsFinal(ns.Status):
		// A stale "running" does not revive a node of an ended dataflow (its nodes are
		// fenced when they still run).
		return statusIgnored, "node already has an inferred outcome: " + n.outcomeText()
	}
	// A daemon-reported status replaces an inferred one; a final one replaces an
	// unreported guess even when the guess had made the dataflow final, whose outcome is
	// then derived again.
	n.Status = ns.Status
	n.Outcome = ns.Outcome
	if n.Outcome == "" {
		n.Outcome = defaultOutcome(ns)
	}
	if ns.PID != 0 {
		n.PID = ns.PID
	}
	n.Since = ns.Time
	if n.Since.IsZero() {
		n.Since = r.now()
	}
	n.Inferred, n.Unreported = false, false
	r.changedLocked(d)
	return statusApplied, ""
}

// resolveDaemon gives every node without an outcome on daemon the status and outcome,
// across all dataflows. It returns the dataflows changed. The daemon is confirmed dead
// (or left): the outcome is final, like a reported one (DESIGN invariants 5 and 7). A
// daemon that comes back with such a node still running has it fenced, and its later
// reports about it are ignored.
func (r *registry) resolveDaemon(daemon, status, outcome string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var changed []string
	for _, d := range r.byID {
		if d.final() {
			continue
		}
		hit := false
		for _, n := range d.Nodes {
			if n.Daemon == daemon && !n.final() {
				n.Status, n.Outcome, n.Since, n.Inferred, n.Unreported = status, outcome, now, false, false
				hit = true
			}
		}
		if hit {
			r.changedLocked(d)
			changed = append(changed, d.ID)
		}
	}
	return changed
}

// marshal encodes a record for the store.
func (r *registry) marshal(id string) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.byID[id]
	if !ok {
		return nil, false, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, true, fmt.Errorf("encode dataflow %s: %w", id, err)
	}
	return b, true, nil
}

// ids lists the dataflows matching keep.
func (r *registry) ids(keep func(d *dataflowRec) bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, d := range r.byID {
		if keep(d) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// counts is the number of dataflows per status.
func (r *registry) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, d := range r.byID {
		out[d.Status]++
	}
	return out
}
