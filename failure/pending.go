package failure

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DeathError is the error of an operation that waited on a member that was
// confirmed dead (or left).
type DeathError struct {
	// Member is the member's name.
	Member string
	// Verdict is Dead or Left.
	Verdict Verdict
	// Since is when the verdict was reached.
	Since time.Time
	// Reason says how it was reached.
	Reason string
	// Op is the operation that was waiting.
	Op string
}

func (e *DeathError) Error() string {
	what := "confirmed dead"
	if e.Verdict == Left {
		what = "left"
	}
	return fmt.Sprintf("daemon %q %s at %s (%s) while waiting for %s",
		e.Member, what, e.Since.Format(timeFormat), e.Reason, e.Op)
}

// Registry holds the operations waiting on members. It keeps its own copy of
// which members are gone, updated under its lock, so that an Add racing with
// a death either fails at once or is failed by the death: never neither.
type Registry struct {
	mu      sync.Mutex
	gone    map[string]State
	pending map[string]map[*Pending]struct{}
}

func newRegistry() *Registry {
	return &Registry{
		gone:    make(map[string]State),
		pending: make(map[string]map[*Pending]struct{}),
	}
}

// Add registers an operation op that waits on member. It fails at once with
// a *DeathError if the member is already dead or left. The caller must call
// Complete when the operation finishes.
func (r *Registry) Add(member string, op string) (*Pending, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.gone[member]; ok {
		return nil, deathError(st, op)
	}
	p := &Pending{reg: r, member: member, op: op, created: time.Now(), done: make(chan struct{})}
	set := r.pending[member]
	if set == nil {
		set = make(map[*Pending]struct{})
		r.pending[member] = set
	}
	set[p] = struct{}{}
	return p, nil
}

// Len returns the number of pending operations on member.
func (r *Registry) Len(member string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending[member])
}

// memberGone records the member as gone and fails everything pending on it.
// It returns how many operations were failed.
func (r *Registry) memberGone(st State) int {
	r.mu.Lock()
	r.gone[st.Name] = st
	set := r.pending[st.Name]
	delete(r.pending, st.Name)
	r.mu.Unlock()
	for p := range set {
		p.finish(deathError(st, p.op))
	}
	return len(set)
}

// memberBack forgets that the member was gone.
func (r *Registry) memberBack(name string) {
	r.mu.Lock()
	delete(r.gone, name)
	r.mu.Unlock()
}

func (r *Registry) remove(p *Pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if set := r.pending[p.member]; set != nil {
		delete(set, p)
		if len(set) == 0 {
			delete(r.pending, p.member)
		}
	}
}

func deathError(st State, op string) *DeathError {
	return &DeathError{Member: st.Name, Verdict: st.Verdict, Since: st.Since, Reason: st.Reason, Op: op}
}

// Pending is an operation waiting on a member.
type Pending struct {
	reg     *Registry
	member  string
	op      string
	created time.Time
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	err     error
}

// Done is closed when the operation completes or its member is confirmed
// dead or left.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Err is a *DeathError once the member was confirmed dead or left, and nil
// otherwise.
func (p *Pending) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Complete marks the operation finished and unregisters it. It is
// idempotent and does nothing after the operation was failed.
func (p *Pending) Complete() {
	p.reg.remove(p)
	p.finish(nil)
}

// Wait blocks until Done is closed and returns Err, or returns ctx's error.
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Member is the member the operation waits on.
func (p *Pending) Member() string { return p.member }

// Op is the operation's description.
func (p *Pending) Op() string { return p.op }

func (p *Pending) finish(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	})
}
