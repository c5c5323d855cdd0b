package main

import (
	"bytes"
	"fmt"
	"time"

	"github.com/doractl/doractl/bench/internal/markdown"
	"github.com/doractl/doractl/bench/internal/stats"
)

// report is everything one run measured, and where it ran.
type report struct {
	command   string
	date      time.Time
	cpus      int
	goVersion string
	load      string // /proc/loadavg's first three fields
	startStop *startStopResult
	latency   []*latencyResult // one daemon
	cross     []*latencyResult // two daemons
	linkQueue int              // send queue of a daemon<->daemon link, in messages
}

// Targets, from the project's goals.
const (
	targetFirstMsg  = time.Second
	targetStop      = 300 * time.Millisecond
	targetLatency8B = 100 * time.Microsecond
	// doraP50 is dora-rs's published Rust p50 for small messages.
	doraP50 = 170 * time.Microsecond
)

// sectionName names the markers of the section this command owns in the output file;
// the micro-benchmarks (section microSection, see -section) and the liveness section
// (bench/cmd/livenessreport) are other sections of the same file.
const (
	sectionName  = "benchreport"
	microSection = "microbenchmarks"
	docPreamble  = "# Benchmarks\n\n"
)

func (r *report) write(path string) error {
	var b bytes.Buffer
	r.render(&b)
	return markdown.WriteSection(path, sectionName, b.String(), docPreamble)
}

func (r *report) render(b *bytes.Buffer) {
	fmt.Fprintf(b, "Measured side by side in one run of `%s` (driver: `bench/cmd/benchreport`, nodes: "+
		"`bench/latency-node` and `examples/rust-dataflow`).\n\n", r.command)
	fmt.Fprintf(b, "| date | nproc | Go | load average before the run |\n| --- | --- | --- | --- |\n| %s | %d | %s | %s |\n\n",
		r.date.Format("2006-01-02 15:04 MST"), r.cpus, r.goVersion, r.load)
	fmt.Fprintf(b, "The coordinator and two daemons (machines `%s` and `%s`) run in the driver's process, each "+
		"daemon linked to the coordinator by a net.Pipe; every node is a real process that talks to its daemon "+
		"over the daemon's Unix socket. All figures but the two-daemon table run their nodes on `%s` alone. The "+
		"machine was shared with other work while it ran: treat the tails (p99, max) as noisy.\n\n", daemonA, daemonB, daemonA)
	r.renderStartStop(b)
	r.renderLatency(b)
	r.renderCross(b)
}

func (r *report) renderStartStop(b *bytes.Buffer) {
	s := r.startStop
	fmt.Fprintf(b, "## Start and stop of the example dataflow\n\n")
	fmt.Fprintf(b, "`examples/rust-dataflow` (three Go nodes, 10 ms timer), %d start/stop cycles. "+
		"*First message*: from the start request to the sink's first `%s` line in its log "+
		"(polled every millisecond). *Stop*: wall time of the stop request (default grace; the nodes "+
		"stop cooperatively on the Stop event) until every node has an outcome.\n\n", len(s.stop), sinkText)
	markdown.Table(b, "figure", "median", "p50", "p99", "max", "target", "met")
	row := func(name string, v []time.Duration, target time.Duration) {
		d := stats.NewDist(v)
		met := "—"
		if target > 0 {
			met = yes(d.Median() < target)
		}
		tgt := "—"
		if target > 0 {
			tgt = "< " + target.String()
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, ms(d.Median()), ms(d.Pct(50)), ms(d.Pct(99)), ms(d.Pct(100)), tgt, met)
	}
	row("start → sink's first message", s.firstMsg, targetFirstMsg)
	row("start request (all nodes spawned)", s.startReq, 0)
	row("stop wall time", s.stop, targetStop)
	fmt.Fprintf(b, "\n")
}

func (r *report) renderLatency(b *bytes.Buffer) {
	fmt.Fprintf(b, "## Node → daemon → node messages\n\n")
	fmt.Fprintf(b, "Two `bench/latency-node` processes on one machine: the producer sends with the metadata "+
		"timestamp set to the send time, the consumer records its receive time (when the event comes out of "+
		"`Node.Events()`) minus the timestamp. The input's `queue_size` is larger than the run, so the daemon "+
		"drops nothing; in the flat-out row the node library's own buffer (1024 events per input) may drop some "+
		"(*dropped*), and latency there is mostly queueing, since the producer outpaces the consumer. Each size runs %d times; *p50 (runs)* is the median of the runs' p50s, the other "+
		"percentiles pool every message of every run. dora-rs publishes the same sizes; its Rust p50 is "+
		"about %s.\n\n", r.runs(), us(doraP50))
	latencyTable(b, r.latency)
	if len(r.latency) > 0 {
		p := r.latency[0].all.Pct(50)
		fmt.Fprintf(b, "\nTarget: local p50 < %s for 8 B — %s (%s). Messages per second: the flat-out "+
			"row (consumer's arrival rate, median of the runs).\n\n", us(targetLatency8B), metWord(p < targetLatency8B), us(p))
	}
}

func (r *report) renderCross(b *bytes.Buffer) {
	if len(r.cross) == 0 {
		return
	}
	fmt.Fprintf(b, "## Node → daemon → daemon → node (two daemons)\n\n")
	fmt.Fprintf(b, "The same nodes and pace with the producer placed on `%s` and the consumer on `%s` "+
		"(`deploy: machine:`), so every message goes producer → daemon `%s` → its daemon↔daemon link over "+
		"loopback TCP (to the other daemon's control listener) → daemon `%s` → consumer; the consumer's "+
		"`ready` goes the other way. *dropped* also counts messages the link's send queue (%d messages, "+
		"oldest dropped first) let go. Same run, same runs per size as the table above.\n\n",
		daemonA, daemonB, daemonA, daemonB, r.linkQueue)
	latencyTable(b, r.cross)
	fmt.Fprintf(b, "\n")
}

// latencyTable writes one row per case.
func latencyTable(b *bytes.Buffer, rows []*latencyResult) {
	fmt.Fprintf(b, "| payload | messages | pace | p50 | p50 (runs) | p90 | p99 | p99 (runs) | max | msg/s | dropped |\n")
	fmt.Fprintf(b, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, l := range rows {
		pace := "1 per " + l.c.interval.String()
		if l.c.interval == 0 {
			pace = "flat out"
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %.0f µs | %s | %s | %.0f µs | %s | %.0f | %d |\n",
			l.c.name, l.received, pace, us(l.all.Pct(50)), stats.MedianF(l.p50s), us(l.all.Pct(90)),
			us(l.all.Pct(99)), stats.MedianF(l.p99s), us(l.all.Pct(100)), stats.MedianF(l.rates), l.dropped)
	}
}

func (r *report) runs() int {
	if len(r.latency) == 0 {
		return 0
	}
	return r.latency[0].runs
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
