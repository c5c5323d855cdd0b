// Command benchreport measures doractl's benchmark figures side by side in one run and
// writes them as Markdown tables: the time from start to the example sink's first message,
// the stop wall time of the example, node -> daemon -> node latency and throughput, and the
// same across two daemons (node -> daemon -> daemon -> node). The coordinator and two
// daemons run in this process (each daemon linked to the coordinator by a net.Pipe, the
// daemons to each other over loopback TCP); every node is a real process. The tables go between the <!-- BEGIN benchreport --> and
// <!-- END benchreport --> markers of the output file (appended with the markers if
// absent); the rest of the file is left byte for byte. With -in it measures nothing and
// puts a file's text into another section (-section), as scripts/bench.sh does with the
// micro-benchmarks.
//
//	go run ./bench/cmd/benchreport -latency-node bench/build/latency-node -out docs/benchmarks.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/bench/internal/markdown"
)

// options are the command line flags.
type options struct {
	out         string
	latencyNode string
	example     string
	cycles      int
	runs        int
	quick       bool
	command     string
	section     string
	in          string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "Markdown file to write (- for stdout)")
	flag.StringVar(&o.latencyNode, "latency-node", "bench/build/latency-node", "the bench/latency-node binary")
	flag.StringVar(&o.example, "example", "examples/rust-dataflow", "folder of the example dataflow, nodes built")
	flag.IntVar(&o.cycles, "cycles", 10, "start/stop cycles of the example")
	flag.IntVar(&o.runs, "runs", 3, "runs of each latency case")
	flag.BoolVar(&o.quick, "quick", false, "fewer messages per run (a smoke test, not figures)")
	flag.StringVar(&o.command, "command", "make bench", "reproducing command printed in the report")
	flag.StringVar(&o.section, "section", microSection, "with -in: the section of -out to replace")
	flag.StringVar(&o.in, "in", "", "measure nothing: put this file's text into -section of -out (used by scripts/bench.sh)")
	flag.Parse()
	if o.in != "" {
		body, err := os.ReadFile(o.in)
		if err == nil {
			err = markdown.WriteSection(o.out, o.section, string(body), docPreamble)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		return
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	example, err := filepath.Abs(o.example)
	if err != nil {
		return fmt.Errorf("example folder: %w", err)
	}
	bin, err := filepath.Abs(o.latencyNode)
	if err != nil {
		return fmt.Errorf("latency node: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("latency node (go build -o %s ./bench/latency-node): %w", o.latencyNode, err)
	}
	state, err := os.MkdirTemp("", "doractl-bench-")
	if err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	defer os.RemoveAll(state)
	log := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Warn, Output: os.Stderr})
	c, err := startCluster(ctx, state, log)
	if err != nil {
		return err
	}
	defer c.close()

	rep := &report{command: o.command, date: time.Now(), cpus: runtime.NumCPU(), goVersion: runtime.Version(), load: markdown.LoadAverage(), linkQueue: c.linkQueue}
	markdown.Progress("start/stop: %d cycles of %s", o.cycles, o.example)
	if rep.startStop, err = runStartStop(ctx, c, example, o.cycles); err != nil {
		return err
	}
	for _, lc := range latencyCases(o.quick) {
		markdown.Progress("latency: %s, %d x %d messages", lc.name, o.runs, lc.count)
		r, err := runLatency(ctx, c, bin, lc, oneDaemon, o.runs)
		if err != nil {
			return err
		}
		rep.latency = append(rep.latency, r)
	}
	for _, lc := range crossCases(o.quick) {
		markdown.Progress("latency across daemons: %s, %d x %d messages", lc.name, o.runs, lc.count)
		r, err := runLatency(ctx, c, bin, lc, twoDaemons, o.runs)
		if err != nil {
			return err
		}
		rep.cross = append(rep.cross, r)
	}
	return rep.write(o.out)
}

// crossCases are the cases run across the two daemons: the 8 B and 40 KB rows and the
// flat-out row of latencyCases, same counts and pace.
func crossCases(quick bool) []latencyCase {
	var out []latencyCase
	for _, lc := range latencyCases(quick) {
		if lc.name == "8 B" || lc.name == "40 KB" || lc.name == "8 B flat out" {
			out = append(out, lc)
		}
	}
	return out
}

// latencyCases are the payload sizes dora publishes, at a steady rate, and a flat-out
// run of 8 B messages for the message rate.
func latencyCases(quick bool) []latencyCase {
	n := func(full int) int {
		if quick {
			return max(full/20, 20)
		}
		return full
	}
	return []latencyCase{
		{name: "8 B", size: 8, count: n(3000), warmup: 20, interval: time.Millisecond},
		{name: "40 KB", size: 40 << 10, count: n(3000), warmup: 20, interval: time.Millisecond},
		{name: "400 KB", size: 400 << 10, count: n(1000), warmup: 10, interval: 3 * time.Millisecond},
		{name: "4 MB", size: 4 << 20, count: n(200), warmup: 5, interval: 20 * time.Millisecond},
		{name: "8 B flat out", size: 8, count: n(100000), warmup: 100, interval: 0},
	}
}
