package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// persister writes changed dataflow records to the store off the hot path: status
// updates only mark a record dirty; flush waits until everything marked so far is on disk
// (used for stop intents, which must be durable before the stops are sent).
type persister struct {
	st      *store // nil: memory only
	encode  func(id string) ([]byte, bool, error)
	log     hclog.Logger
	mu      sync.Mutex
	dirty   map[string]bool
	waiters []chan error
	kick    chan struct{}
}

func newPersister(st *store, encode func(id string) ([]byte, bool, error), log hclog.Logger) *persister {
	return &persister{st: st, encode: encode, log: log, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// mark schedules a write of the record. It never blocks.
func (p *persister) mark(id string) {
	if p.st == nil {
		return
	}
	p.mu.Lock()
	p.dirty[id] = true
	p.mu.Unlock()
	p.signal()
}

func (p *persister) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// flush waits until every record marked before the call is written.
func (p *persister) flush(ctx context.Context) error {
	if p.st == nil {
		return nil
	}
	ch := make(chan error, 1)
	p.mu.Lock()
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	p.signal()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wait for the store: %w", ctx.Err())
	}
}

// run writes dirty records until ctx ends, then writes what is left.
func (p *persister) run(ctx context.Context) {
	if p.st == nil {
		return
	}
	for {
		select {
		case <-p.kick:
			p.writeDirty()
		case <-ctx.Done():
			p.writeDirty()
			return
		}
	}
}

func (p *persister) writeDirty() {
	p.mu.Lock()
	dirty, waiters := p.dirty, p.waiters
	p.dirty, p.waiters = map[string]bool{}, nil
	p.mu.Unlock()
	var err error
	if len(dirty) > 0 {
		recs := make(map[string][]byte, len(dirty))
		for id := range dirty {
			b, ok, eerr := p.encode(id)
			if eerr != nil {
				err = eerr
				continue
			}
			if ok {
				recs[id] = b
			} else {
				recs[id] = nil
			}
		}
		start := time.Now()
		if werr := p.st.putDataflows(recs); werr != nil {
			err = werr
		}
		p.log.Trace("store write", "records", len(recs), "took", time.Since(start))
	}
	if err != nil {
		p.log.Error("persisting dataflows failed", "error", err)
	}
	for _, w := range waiters {
		w <- err
	}
}
