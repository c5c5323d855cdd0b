package daemon

import (
	"sync"

	"github.com/doractl/doractl/proto"
)

// message is one piece of data waiting for delivery to an input.
type message struct {
	data []byte
	md   proto.Metadata
}

// inputQueue is the bounded queue of one (node, input). When it is full the oldest
// message is dropped: a slow consumer loses old data, it never slows the producer.
type inputQueue struct {
	id         string
	buf        []message // ring buffer of len = queue size
	head, n    int
	dropped    uint64 // messages dropped on overflow so far
	srcClosed  bool   // the producer ended: InputClosed follows the queued data
	closedSent bool
}

func newInputQueue(id string, size int) *inputQueue {
	if size <= 0 {
		size = defaultQueueSize
	}
	return &inputQueue{id: id, buf: make([]message, size)}
}

// defaultQueueSize applies to inputs that give no queue size, as dora.
const defaultQueueSize = 10

func (q *inputQueue) push(m message) {
	if q.n == len(q.buf) {
		q.buf[q.head] = message{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.dropped++
	}
	q.buf[(q.head+q.n)%len(q.buf)] = m
	q.n++
}

func (q *inputQueue) pop() message {
	m := q.buf[q.head]
	q.buf[q.head] = message{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return m
}

// delivery is the next event an inbox hands to its sender.
type delivery struct {
	typ string // proto.TypeInput or proto.TypeInputClosed
	msg any
}

// inbox holds every input queue of one consumer node. Producers push without ever
// blocking; one sender goroutine per connected node drains it round-robin.
type inbox struct {
	node string

	mu     sync.Mutex
	queues []*inputQueue
	byID   map[string]*inputQueue
	next   int  // round-robin position
	gone   bool // the consumer ended: drop everything
	wake   chan struct{}
}

func newInbox(node string) *inbox {
	return &inbox{node: node, byID: map[string]*inputQueue{}, wake: make(chan struct{}, 1)}
}

// addInput declares an input; call before any push.
func (b *inbox) addInput(id string, size int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.byID[id]; ok {
		return
	}
	q := newInputQueue(id, size)
	b.queues = append(b.queues, q)
	b.byID[id] = q
}

func (b *inbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// push queues a message for an input. It never blocks; it reports false when the message
// was not queued (unknown input, producer already closed, consumer gone).
func (b *inbox) push(input string, m message) bool {
	b.mu.Lock()
	q, ok := b.byID[input]
	if !ok || b.gone || q.srcClosed {
		b.mu.Unlock()
		return false
	}
	q.push(m)
	b.mu.Unlock()
	b.signal()
	return true
}

// closeInput marks an input's producer as ended; InputClosed follows its queued data.
func (b *inbox) closeInput(input string) {
	b.mu.Lock()
	q, ok := b.byID[input]
	if !ok || q.srcClosed {
		b.mu.Unlock()
		return
	}
	q.srcClosed = true
	b.mu.Unlock()
	b.signal()
}

// drop discards everything: the consumer has ended.
func (b *inbox) drop() {
	b.mu.Lock()
	b.gone = true
	for _, q := range b.queues {
		for q.n > 0 {
			q.pop()
		}
	}
	b.mu.Unlock()
	b.signal()
}

// take returns the next event to send: one message per input in turn, and an input's
// InputClosed once its queue is empty.
func (b *inbox) take() (delivery, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone || len(b.queues) == 0 {
		return delivery{}, false
	}
	for i := range b.queues {
		k := (b.next + i) % len(b.queues)
		q := b.queues[k]
		if q.n > 0 {
			m := q.pop()
			b.next = (k + 1) % len(b.queues)
			return delivery{typ: proto.TypeInput, msg: &proto.Input{ID: q.id, Data: m.data, Metadata: m.md, Dropped: q.dropped}}, true
		}
	}
	for _, q := range b.queues {
		if q.srcClosed && !q.closedSent {
			q.closedSent = true
			return delivery{typ: proto.TypeInputClosed, msg: &proto.InputClosed{ID: q.id}}, true
		}
	}
	return delivery{}, false
}

// stats reports per input: queued messages and dropped ones.
func (b *inbox) stats(input string) (queued int, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.byID[input]; ok {
		return q.n, q.dropped
	}
	return 0, 0
}
