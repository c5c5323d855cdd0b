package failure

import "sync"

// hub fans verdict changes out to subscribers without ever blocking the
// publisher: a full subscriber loses its oldest undelivered change.
type hub struct {
	mu      sync.Mutex
	buffer  int
	next    int
	subs    map[int]chan State
	dropped uint64
}

func newHub(buffer int) *hub {
	return &hub{buffer: max(buffer, 1), subs: make(map[int]chan State)}
}

func (h *hub) subscribe() (<-chan State, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.next
	h.next++
	ch := make(chan State, h.buffer)
	h.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if _, ok := h.subs[id]; ok {
				delete(h.subs, id)
				close(ch)
			}
		})
	}
}

func (h *hub) publish(st State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.subs {
		for {
			select {
			case ch <- st:
			default:
				// Full: drop the oldest and retry. The subscriber's reads
				// race with this, hence the loop.
				select {
				case <-ch:
					h.dropped++
				default:
				}
				continue
			}
			break
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ch := range h.subs {
		delete(h.subs, id)
		close(ch)
	}
}

// droppedTotal is the number of changes dropped for slow subscribers.
func (h *hub) droppedTotal() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}
