// Command failurereport measures doractl's failure-detection figures with real processes
// (a coordinator and three daemons per liveness profile, started with the built doractl
// binary on loopback, each cluster with its own ports and state folder) and writes them
// into the measured section of docs/failure-model.md: the time from kill -9 of a daemon
// to the answer of a pending `doractl stop` that waits on a stubborn node there; the time
// from SIGSTOP of a daemon to its dead verdict in `doractl members -o json`; and, for
// stalls of 1 to 6 s (6 to 18 s on profiles with a stall grace; SIGSTOP, then SIGCONT),
// whether any dead verdict appeared.
//
//	go run ./bench/cmd/failurereport -out docs/failure-model.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/doractl/doractl/bench/internal/markdown"
	"github.com/doractl/doractl/cluster"
)

// options are the command line flags.
type options struct {
	out            string
	bin            string
	profiles       string
	crashTrials    int
	freezeTrials   int
	stallTrials    int
	stalls         string
	graceStalls    string
	wanCrashTrials int
	wanFreeze      int
	command        string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/failure-model.md", "Markdown file whose measured section is (re)written (- for stdout)")
	flag.StringVar(&o.bin, "bin", "bin/doractl", "the doractl binary (make build)")
	flag.StringVar(&o.profiles, "profiles", "lan,local,flaky,wan", "liveness profiles to measure, in order")
	flag.IntVar(&o.crashTrials, "crash-trials", 20, "kill -9 trials per profile")
	flag.IntVar(&o.freezeTrials, "freeze-trials", 10, "SIGSTOP-until-dead trials per profile")
	flag.IntVar(&o.stallTrials, "stall-trials", 3, "trials per stall length")
	flag.StringVar(&o.stalls, "stalls", "1s,2s,3s,4s,5s,6s", "stall lengths (SIGSTOP then SIGCONT)")
	flag.StringVar(&o.graceStalls, "grace-stalls", "6s,10s,15s,18s", "stall lengths on profiles with a stall grace (flaky, wan)")
	flag.IntVar(&o.wanCrashTrials, "wan-crash-trials", 5, "kill -9 trials on the wan profile")
	flag.IntVar(&o.wanFreeze, "wan-freeze-trials", 5, "SIGSTOP trials on the wan profile (0: skip freeze and stall on wan)")
	flag.StringVar(&o.command, "command", "make bench-failure", "reproducing command printed in the report")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "failurereport:", err)
		os.Exit(1)
	}
}

// plan is what is measured on one profile.
type plan struct {
	profile      string
	crashTrials  int
	freezeTrials int
	stallTrials  int
	stalls       []time.Duration
	freezeWithin time.Duration // give up on one freeze trial after this
	skip         string        // why freeze and stall are not measured ("" if they are)
}

func plans(o *options) ([]plan, error) {
	stalls, err := parseDurations("-stalls", o.stalls)
	if err != nil {
		return nil, err
	}
	graceStalls, err := parseDurations("-grace-stalls", o.graceStalls)
	if err != nil {
		return nil, err
	}
	var out []plan
	for _, p := range strings.Split(o.profiles, ",") {
		p = strings.TrimSpace(p)
		prof, err := cluster.ProfileByName(p)
		if err != nil {
			return nil, err
		}
		pl := plan{profile: p, crashTrials: o.crashTrials, freezeTrials: o.freezeTrials,
			stallTrials: o.stallTrials, stalls: stalls, freezeWithin: 60 * time.Second}
		if prof.StallGrace > 0 {
			// A frozen daemon lives for the grace: shorter stalls would prove nothing.
			pl.stalls = graceStalls
		}
		if p == cluster.ProfileWAN {
			pl.crashTrials = o.wanCrashTrials
			pl.freezeTrials = o.wanFreeze
			pl.freezeWithin = 3 * time.Minute
			if o.wanFreeze == 0 {
				pl.stallTrials = 0
				pl.skip = "wan freeze and stall trials skipped (-wan-freeze-trials 0)"
			}
		}
		out = append(out, pl)
	}
	return out, nil
}

func parseDurations(flagName, list string) ([]time.Duration, error) {
	var out []time.Duration
	for _, s := range strings.Split(list, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flagName, list, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func run(ctx context.Context, o *options) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return fmt.Errorf("doractl binary: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("doractl binary (make build): %w", err)
	}
	pls, err := plans(o)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "doractl-failure-")
	if err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	defer os.RemoveAll(work)
	stubborn := filepath.Join(work, "ignore-stop")
	markdown.Progress("building examples/stubborn/ignore-stop")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", stubborn, "./examples/stubborn/ignore-stop").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./examples/stubborn/ignore-stop: %w\n%s", err, out)
	}

	rep := &report{command: o.command, date: time.Now(), cpus: runtime.NumCPU(), goVersion: runtime.Version(), loadBefore: markdown.LoadAverage()}
	started := time.Now()
	for _, pl := range pls {
		res, err := measure(ctx, bin, work, stubborn, pl)
		if err != nil {
			return fmt.Errorf("profile %s: %w", pl.profile, err)
		}
		rep.profiles = append(rep.profiles, res)
	}
	rep.loadAfter = markdown.LoadAverage()
	rep.took = time.Since(started)
	markdown.Progress("done in %s", rep.took.Round(time.Second))
	return rep.write(o.out)
}

// profileResult is everything measured on one profile.
type profileResult struct {
	plan
	crashes  []crashTrial
	freezes  []freezeTrial
	stalls   []stallTrial
	stallRan map[time.Duration]bool
	load     string // load average when the profile's run began
}

// measure runs the three measurements of a profile, each on a cluster of its own: a burst
// of crashes leaves many dead entries in memberlist's node list for GossipToTheDeadTime
// (30 s on lan), which would inflate the ring size the next measurement sees.
func measure(ctx context.Context, bin, work, stubborn string, pl plan) (*profileResult, error) {
	res := &profileResult{plan: pl, stallRan: map[time.Duration]bool{}, load: markdown.LoadAverage()}
	markdown.Progress("%s: load %s", pl.profile, res.load)
	if pl.crashTrials > 0 {
		err := withCluster(ctx, bin, work, pl.profile, func(e *env) error {
			for i := range pl.crashTrials {
				t, err := crash(ctx, e, stubborn, i+1)
				if err != nil {
					return fmt.Errorf("crash trial %d: %w", i+1, err)
				}
				markdown.Progress("%s: crash %d/%d: stop answered %s after kill -9 (exit %d, lost %v, refused port %v)",
					pl.profile, i+1, pl.crashTrials, ms(t.answered), t.code, t.lost, t.refused)
				res.crashes = append(res.crashes, t)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if pl.freezeTrials > 0 {
		err := withCluster(ctx, bin, work, pl.profile, func(e *env) error {
			for i := range pl.freezeTrials {
				t, err := freeze(ctx, e, i+1, pl.freezeWithin)
				if err != nil {
					return fmt.Errorf("freeze trial %d: %w", i+1, err)
				}
				markdown.Progress("%s: freeze %d/%d: dead after %s (suspect after %s): %s", pl.profile, i+1, pl.freezeTrials, ms(t.dead), ms(t.suspect), t.reason)
				res.freezes = append(res.freezes, t)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if pl.stallTrials > 0 {
		err := withCluster(ctx, bin, work, pl.profile, func(e *env) error {
			sr := &stallRunner{e: e}
			for _, stall := range pl.stalls {
				deaths := 0
				for i := range pl.stallTrials {
					t, err := sr.trial(ctx, stall)
					if err != nil {
						return fmt.Errorf("stall %s trial %d: %w", stall, i+1, err)
					}
					markdown.Progress("%s: stall %s %d/%d: dead %v, suspect %v %s", pl.profile, stall, i+1, pl.stallTrials, t.dead, t.suspect, t.reason)
					res.stalls = append(res.stalls, t)
					if t.dead {
						deaths++
					}
				}
				res.stallRan[stall] = true
				if deaths == pl.stallTrials {
					markdown.Progress("%s: every %s stall killed the daemon; longer stalls are not run", pl.profile, stall)
					break
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// withCluster starts a fresh cluster (coordinator, daemons a and b) for profile, runs f
// and destroys the cluster.
func withCluster(ctx context.Context, bin, work, profile string, f func(*env) error) error {
	e, err := newEnv(bin, work, profile, 90*time.Second)
	if err != nil {
		return err
	}
	defer e.destroy(context.WithoutCancel(ctx))
	if err := e.up(ctx, "a", "b"); err != nil {
		return err
	}
	return f(e)
}

func ms(d time.Duration) string {
	return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
}
