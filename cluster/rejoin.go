package cluster

import (
	"slices"
	"sync"
	"time"
)

// rejoinLoop periodically re-joins the seeds and every member that went away
// without leaving. memberlist never probes a dead member again, so without
// this a partition would leave both sides believing the other dead forever.
func (r *Ring) rejoinLoop(interval time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stopCh:
			return
		case <-t.C:
			r.rejoinOnce()
		}
	}
}

// rejoinTargets returns the addresses to re-join now: seeds that are not
// the address of an alive member, and gone members that did not leave and
// have not been gone longer than RejoinTimeout (those are forgotten).
func (r *Ring) rejoinTargets(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	alive := make(map[string]bool, len(r.members))
	for _, m := range r.members {
		alive[m.Addr] = true
	}
	var out []string
	for _, s := range r.seeds {
		if !alive[s] && s != r.addr {
			out = append(out, s)
		}
	}
	for name, s := range r.seen {
		if name == r.name || s.goneAt.IsZero() {
			continue
		}
		if _, ok := r.members[name]; ok {
			continue
		}
		if s.left || (r.cfg.RejoinTimeout > 0 && now.Sub(s.goneAt) > r.cfg.RejoinTimeout) {
			delete(r.seen, name)
			continue
		}
		if !alive[s.addr] && s.addr != r.addr {
			out = append(out, s.addr)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// rejoinOnce joins every target in parallel and waits for all of them, or
// for Shutdown: a dial into a black hole takes the profile's whole
// TCPTimeout, and must not hold Shutdown up. Joins left running then fail
// fast on the closed transport.
func (r *Ring) rejoinOnce() {
	targets := r.rejoinTargets(time.Now())
	if len(targets) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, addr := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := r.ml.Join([]string{addr})
			select {
			case <-r.stopCh:
				return
			default:
			}
			if n > 0 {
				r.rejoins.Add(1)
				r.logger.Info("re-joined gossip peer", "member", r.name, "addr", addr)
				return
			}
			r.logger.Debug("re-join failed", "member", r.name, "addr", addr, "error", err)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-r.stopCh:
	}
}
