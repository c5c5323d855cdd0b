package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/doractl/doractl/failure"
)

// baselineScale is the time compression of the second baseline loss run: interval and
// timeout divided by it, so one wall second covers baselineScale detector seconds.
const baselineScale = 10

// hbRing is the baseline: one central failure.HeartbeatDetector (the coordinator) and
// daemons that beat into it in-process. A beat is one message lost end to end as a
// packet between two FaultTransports is: the drop probability is rolled once for the
// sender's transport and once for the receiver's (math/rand/v2), so a beat is lost
// with 1 - (1-p)^2 end to end, as SWIM traffic and the control-link model are.
type hbRing struct {
	cfg    failure.HeartbeatConfig
	det    *failure.HeartbeatDetector
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	deaths  []death
	daemons []*hbDaemon
}

type hbDaemon struct {
	name string
	r    *hbRing

	mu        sync.Mutex
	dropRate  float64
	crashed   bool
	holdUntil time.Time
	held      bool
}

func newHBRing(label string, n int, scale int, dropRate float64) *hbRing {
	cfg := failure.DefaultHeartbeatConfig()
	cfg.Interval /= time.Duration(scale)
	cfg.Timeout /= time.Duration(scale)
	ctx, cancel := context.WithCancel(context.Background())
	r := &hbRing{cfg: cfg, det: failure.NewHeartbeatDetector(cfg), cancel: cancel}
	sub, unsub := r.det.Subscribe()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer unsub()
		for {
			select {
			case <-ctx.Done():
				return
			case st, ok := <-sub:
				if !ok {
					return
				}
				if st.Verdict == failure.Dead {
					r.mu.Lock()
					r.deaths = append(r.deaths, death{observer: "coordinator", member: st.Name, at: st.Since})
					r.mu.Unlock()
				}
			}
		}
	}()
	for i := 1; i < n; i++ {
		d := &hbDaemon{name: fmt.Sprintf("%s-d%d", label, i), r: r, dropRate: dropRate}
		r.daemons = append(r.daemons, d)
		r.wg.Add(1)
		go d.run(ctx)
	}
	return r
}

// run beats now, then every Interval from a random phase, like daemons started at
// different times.
func (d *hbDaemon) run(ctx context.Context) {
	defer d.r.wg.Done()
	d.send()
	sleepCtx(ctx, rand.N(d.r.cfg.Interval))
	t := time.NewTicker(d.r.cfg.Interval)
	defer t.Stop()
	for {
		d.tick()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *hbDaemon) tick() {
	d.mu.Lock()
	if d.crashed {
		d.mu.Unlock()
		return
	}
	if time.Now().Before(d.holdUntil) {
		d.held = true
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.send()
}

// send delivers one beat unless the drop rolls lose it: one for the daemon's (sender's)
// transport, one for the coordinator's (receiver's), as FaultTransport drops on
// WriteToAddress and again on receipt.
func (d *hbDaemon) send() {
	d.mu.Lock()
	p, crashed := d.dropRate, d.crashed
	d.mu.Unlock()
	if crashed || dropRoll(p) || dropRoll(p) {
		return
	}
	d.r.det.Beat(d.name)
}

// dropRoll is one FaultTransport drop roll with probability p.
func dropRoll(p float64) bool { return p > 0 && rand.Float64() < p }

func (d *hbDaemon) crash() {
	d.mu.Lock()
	d.crashed = true
	d.mu.Unlock()
}

// stall holds beats for dur; a beat held during the stall is delivered when it ends, as a
// FaultTransport delivers held traffic.
func (d *hbDaemon) stall(dur time.Duration) {
	d.mu.Lock()
	d.holdUntil = time.Now().Add(dur)
	d.held = false
	d.mu.Unlock()
	time.AfterFunc(dur, func() {
		d.mu.Lock()
		held := d.held
		d.held = false
		d.mu.Unlock()
		if held {
			d.send()
		}
	})
}

func (r *hbRing) deathsSeen(name string, from, to time.Time) []death {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []death
	for _, d := range r.deaths {
		if (name == "" || d.member == name) && !d.at.Before(from) && !d.at.After(to) {
			out = append(out, d)
		}
	}
	return out
}

func (r *hbRing) close() {
	r.cancel()
	r.wg.Wait()
	r.det.Close()
}

// runBaselineCrash runs `trials` crashes at once, each on its own detector with n-1
// daemons: after a random warm-up of 2-3 intervals a random daemon stops beating; the
// latency is from then to the dead verdict.
func runBaselineCrash(ctx context.Context, n, trials int) *crashResult {
	res := &crashResult{detector: "heartbeat", fault: "either", profile: "dora 5 s / 20 s", n: n, trials: trials}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for t := range trials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newHBRing(fmt.Sprintf("hb-crash-%d-%d", n, t), n, 1, 0)
			defer r.close()
			sleepCtx(ctx, 2*r.cfg.Interval+rand.N(r.cfg.Interval))
			victim := r.daemons[rand.N(len(r.daemons))]
			t0 := time.Now()
			victim.crash()
			deadline := time.Now().Add(2 * r.cfg.Timeout)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if ds := r.deathsSeen(victim.name, t0, time.Now().Add(time.Hour)); len(ds) > 0 {
					mu.Lock()
					res.latencies = append(res.latencies, ds[0].at.Sub(t0))
					mu.Unlock()
					return
				}
				sleepCtx(ctx, 10*time.Millisecond)
			}
			mu.Lock()
			res.err = "a crash was not detected in time"
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// runBaselineLoss counts dead verdicts for d with loss as the per-transport drop
// probability, rolled for the sender and the receiver of every beat (endToEnd(loss)).
// scale > 1 compresses the detector's time (interval and timeout / scale).
func runBaselineLoss(ctx context.Context, n int, loss float64, d time.Duration, scale int) *lossResult {
	label := "real time"
	if scale > 1 {
		label = fmt.Sprintf("×%d time", scale)
	}
	res := &lossResult{detector: "heartbeat", profile: label, n: n, loss: loss}
	r := newHBRing(fmt.Sprintf("hb-loss-%02.0f-%d", loss*100, scale), n, scale, loss)
	defer r.close()
	// Let every daemon register.
	sleepCtx(ctx, r.cfg.Interval)
	from := time.Now()
	sleepCtx(ctx, d)
	to := time.Now()
	res.duration = to.Sub(from)
	res.simulated = res.duration * time.Duration(scale)
	res.atCoord = len(r.deathsSeen("", from, to))
	res.atAny, res.verdict = -1, -1
	return res
}

// runBaselineStall holds one daemon's beats (rotating) for dur, `stalls` times, with the
// same schedule as runSwimStall.
func runBaselineStall(ctx context.Context, n int, dur time.Duration, stalls int, recover time.Duration) *stallResult {
	res := &stallResult{detector: "heartbeat", profile: "dora 5 s / 20 s", n: n, stall: dur, stalls: stalls, verdictKilled: -1}
	r := newHBRing(fmt.Sprintf("hb-stall-%d", int(dur.Seconds())), n, 1, 0)
	defer r.close()
	sleepCtx(ctx, r.cfg.Interval)
	start := time.Now()
	for i := range stalls {
		victim := r.daemons[i%len(r.daemons)]
		t0 := time.Now()
		victim.stall(dur)
		sleepCtx(ctx, dur+recover)
		if got := r.deathsSeen(victim.name, t0, time.Now()); len(got) > 0 {
			res.killed++
			res.firstAt = append(res.firstAt, got[0].at.Sub(t0))
		}
	}
	res.duration = time.Since(start)
	return res
}
