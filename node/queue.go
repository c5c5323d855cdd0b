package node

import "sync"

// maxQueuedPerInput bounds the events of one input waiting in the node's own queue: the
// daemon already bounds each input, this only keeps a stalled program from growing
// without limit. When it is reached the oldest data of that input is dropped.
const maxQueuedPerInput = 1024

// eventQueue is the node's side buffer between the link's read loop, which must never
// block, and the Events channel, which the program reads at its own pace.
type eventQueue struct {
	mu      sync.Mutex
	items   []Event
	perID   map[string]int
	dropped map[string]uint64
	closed  bool
	wake    chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{perID: map[string]int{}, dropped: map[string]uint64{}, wake: make(chan struct{}, 1)}
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push appends an event without blocking.
func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if ev.Type == EventInput {
		if q.perID[ev.ID] >= maxQueuedPerInput {
			for i, old := range q.items {
				if old.Type == EventInput && old.ID == ev.ID {
					q.items = append(q.items[:i], q.items[i+1:]...)
					q.perID[ev.ID]--
					q.dropped[ev.ID]++
					break
				}
			}
		}
		q.perID[ev.ID]++
	}
	q.items = append(q.items, ev)
	q.mu.Unlock()
	q.signal()
}

// close marks the end: pop returns what is left, then reports done.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// pop takes the next event; done is true once the queue is closed and empty.
func (q *eventQueue) pop() (ev Event, ok, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return Event{}, false, q.closed
	}
	ev = q.items[0]
	q.items[0] = Event{}
	q.items = q.items[1:]
	if ev.Type == EventInput {
		q.perID[ev.ID]--
		ev.Dropped += q.dropped[ev.ID] // the daemon's drops plus ours, so far
	}
	return ev, true, false
}
