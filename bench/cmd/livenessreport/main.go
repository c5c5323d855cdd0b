// Command livenessreport measures doractl's liveness figures side by side in one run, with
// one fault schedule for both detectors: the SWIM ring (cluster.Ring over memberlist, every
// member on its own loopback IP behind a cluster.FaultTransport) and the baseline central
// heartbeat (failure.HeartbeatDetector, dora's 5 s / 20 s scheme). On the SWIM rings it
// also gives the product's verdict: the coordinator's failure.Detector fed by the ring's
// events and by real control links under the same loss (verdict.go). It writes the section
// "Liveness: SWIM vs central heartbeat" into a Markdown file between the
// <!-- BEGIN livenessreport --> and <!-- END livenessreport --> markers (appended with the
// markers if absent), leaving every other byte of the file alone.
//
//	go run ./bench/cmd/livenessreport -out docs/benchmarks.md
//
// Figures: crash detection latency at N = 3, 5, 10 (observer: the coordinator member),
// false deaths under packet loss and process stalls at N = 5, and gossip messages per
// second per member at N = 10, 50, 200.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doractl/doractl/bench/internal/markdown"
	"github.com/doractl/doractl/cluster"
)

// options are the command line flags.
type options struct {
	out          string
	command      string
	trials       int
	wanTrials    int
	lossDuration time.Duration
	stalls       int
	stallRecover time.Duration
	loadWindow   time.Duration
	loadSizes    string
	phases       string
	lossRates    string
	rates        []float64 // parsed lossRates
	profiles     string
	section      string
	quick        bool
}

// has reports whether phase is among the -phases to run.
func (o *options) has(phase string) bool {
	for _, p := range strings.Split(o.phases, ",") {
		if strings.TrimSpace(p) == phase {
			return true
		}
	}
	return false
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "Markdown file to write the section into (- for stdout)")
	flag.StringVar(&o.command, "command", "", "reproducing command printed in the report beside the driver's own command line (default: the driver's line alone)")
	flag.IntVar(&o.trials, "trials", 10, "crash trials per profile and N (lan, local, flaky, baseline)")
	flag.IntVar(&o.wanTrials, "wan-trials", 10, "crash trials per N on the wan profile")
	flag.DurationVar(&o.lossDuration, "loss-duration", 90*time.Second, "run time of each packet-loss condition")
	flag.IntVar(&o.stalls, "stalls", 3, "stalls per stall condition")
	flag.DurationVar(&o.stallRecover, "stall-recover", 20*time.Second, "observation time after each stall ends")
	flag.DurationVar(&o.loadWindow, "load-window", 30*time.Second, "measurement window of the gossip load")
	flag.StringVar(&o.loadSizes, "load-sizes", "10,50,200", "ring sizes of the gossip load")
	flag.StringVar(&o.phases, "phases", "crash,false,load", "phases to run: crash (latency), false (false deaths under loss and stalls), load (gossip load)")
	flag.StringVar(&o.lossRates, "loss-rates", "0,0.1,0.2,0.3", "per-transport drop probabilities of the loss conditions")
	flag.StringVar(&o.profiles, "profiles", "lan,local,flaky,wan", "SWIM profiles to measure")
	flag.StringVar(&o.section, "section", sectionName, "name of the section's markers in the output file (a partial run writes its own section)")
	flag.BoolVar(&o.quick, "quick", false, "a short smoke run (not figures)")
	flag.Parse()
	if o.quick {
		o.trials, o.wanTrials = 2, 1
		o.lossDuration, o.stalls, o.stallRecover, o.loadWindow = 10*time.Second, 1, 5*time.Second, 5*time.Second
		o.loadSizes = "10,50"
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "livenessreport:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	sizes, err := parseSizes(o.loadSizes)
	if err != nil {
		return err
	}
	if o.rates, err = parseRates(o.lossRates); err != nil {
		return err
	}
	profiles := strings.Split(o.profiles, ",")
	for _, p := range profiles {
		if _, err := cluster.ProfileByName(p); err != nil {
			return err
		}
	}
	rep := &report{
		command: o.command, date: time.Now(), cpus: runtime.NumCPU(), goVersion: runtime.Version(),
		loadBefore: markdown.LoadAverage(), opts: *o, args: os.Args[1:],
	}
	start := time.Now()

	// Phase 1: crash detection latency. Every (detector, profile, N) is its own ring on its
	// own loopback IPs, run at the same time as the others.
	var mu sync.Mutex
	var wg sync.WaitGroup
	if o.has("crash") {
		markdown.Progress("crash latency: %d trials per profile, fault and N (wan: %d)", o.trials, o.wanTrials)
	}
	for _, p := range profiles {
		if !o.has("crash") {
			break
		}
		trials := o.trials
		if p == "wan" {
			trials = o.wanTrials
		}
		for _, n := range []int{3, 5, 10} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := runSwimCrash(ctx, p, n, trials)
				mu.Lock()
				rep.crash = append(rep.crash, res...)
				mu.Unlock()
			}()
		}
	}
	for _, n := range []int{3, 5, 10} {
		if !o.has("crash") {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := runBaselineCrash(ctx, n, o.trials)
			mu.Lock()
			rep.crash = append(rep.crash, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.loadAfterCrash = markdown.LoadAverage()
	if err := ctx.Err(); err != nil {
		return err
	}

	// Phase 2: false deaths under loss and stalls, N = 5, every condition at once.
	falsePhase := o.has("false")
	if falsePhase {
		markdown.Progress("false deaths: loss %s for %s each, stalls 3/8/15 s x %d", o.lossRates, o.lossDuration, o.stalls)
	}
	for _, p := range profiles {
		if !falsePhase {
			break
		}
		for _, loss := range o.rates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := runSwimLoss(ctx, p, 5, loss, o.lossDuration)
				mu.Lock()
				rep.loss = append(rep.loss, res)
				mu.Unlock()
			}()
		}
		for _, d := range stallDurations {
			if o.stalls == 0 {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := runSwimStall(ctx, p, 5, d, o.stalls, o.stallRecover)
				mu.Lock()
				rep.stall = append(rep.stall, res)
				mu.Unlock()
			}()
		}
	}
	for _, loss := range o.rates {
		if !falsePhase {
			break
		}
		for _, scale := range []int{1, baselineScale} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := runBaselineLoss(ctx, 5, loss, o.lossDuration, scale)
				mu.Lock()
				rep.loss = append(rep.loss, res)
				mu.Unlock()
			}()
		}
	}
	for _, d := range stallDurations {
		if !falsePhase || o.stalls == 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := runBaselineStall(ctx, 5, d, o.stalls, o.stallRecover)
			mu.Lock()
			rep.stall = append(rep.stall, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.loadAfterFalse = markdown.LoadAverage()
	if err := ctx.Err(); err != nil {
		return err
	}

	// Phase 3: gossip load, alone (it is the heaviest phase).
	if o.has("load") {
		markdown.Progress("gossip load: N = %s, %s window", o.loadSizes, o.loadWindow)
	}
	for _, n := range sizes {
		if !o.has("load") {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := runLoad(ctx, n, o.loadWindow)
			mu.Lock()
			rep.load = append(rep.load, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.loadAfter = markdown.LoadAverage()
	rep.wall = time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	rep.sort()
	if err := rep.write(o.out); err != nil {
		return err
	}
	markdown.Progress("done in %s; wrote %s", rep.wall.Round(time.Second), o.out)
	return nil
}

// stallDurations are the stall conditions of phase 2 (the loss rates come from -loss-rates).
var stallDurations = []time.Duration{3 * time.Second, 8 * time.Second, 15 * time.Second}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		var p float64
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%g", &p); err != nil || p < 0 || p >= 1 {
			return nil, fmt.Errorf("loss rate %q: want a probability in [0, 1)", f)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil || n < 2 {
			return nil, fmt.Errorf("load size %q: want an integer >= 2", f)
		}
		out = append(out, n)
	}
	return out, nil
}
