package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/doractl/doractl/bench/internal/stats"
)

// summaryPrefix starts the consumer's summary line (bench/latency-node).
const summaryPrefix = "LATENCY "

// latencyCase is one payload size: count messages, one every interval (0 = flat out).
type latencyCase struct {
	name     string
	size     int
	count    int
	warmup   int
	interval time.Duration
}

// consumerSummary is the consumer's summary line.
type consumerSummary struct {
	Received  int     `json:"received"`
	Dropped   uint64  `json:"dropped"`
	Bytes     int     `json:"bytes"`
	Rate      float64 `json:"rate"`
	Latencies []int64 `json:"latencies_ns"`
}

// latencyResult pools the runs of one case.
type latencyResult struct {
	c        latencyCase
	runs     int
	all      stats.Dist // every latency of every run
	p50s     []float64  // per run, microseconds
	p99s     []float64
	rates    []float64
	received int
	dropped  uint64 // messages sent but not received, every run
}

// placement is the machines of the producer and the consumer (deploy.machine).
type placement struct{ producer, consumer string }

var (
	// oneDaemon runs both nodes on daemon A: node -> daemon -> node.
	oneDaemon = placement{producer: daemonA, consumer: daemonA}
	// twoDaemons runs the consumer on daemon B: node -> daemon A -> TCP link -> daemon B -> node.
	twoDaemons = placement{producer: daemonA, consumer: daemonB}
)

const latencyDescriptor = `nodes:
  - id: producer
    path: %[1]s
    deploy:
      machine: %[7]s
    args: -role producer -size %[2]d -count %[3]d -interval %[4]s
    inputs:
      ready: consumer/ready
    outputs:
      - data
  - id: consumer
    path: %[1]s
    deploy:
      machine: %[8]s
    args: -role consumer -warmup %[5]d
    inputs:
      data:
        source: producer/data
        queue_size: %[6]d
    outputs:
      - ready
`

// runLatency runs one case runs times, its nodes placed on pl's machines.
func runLatency(ctx context.Context, c *cluster, bin string, lc latencyCase, pl placement, runs int) (*latencyResult, error) {
	res := &latencyResult{c: lc, runs: runs}
	var all []time.Duration
	for r := range runs {
		desc := fmt.Sprintf(latencyDescriptor, bin, lc.size, lc.count, lc.interval, lc.warmup, lc.count+16, pl.producer, pl.consumer)
		id, err := c.start(ctx, fmt.Sprintf("latency-%s-%s-%d", pl.consumer, lc.name, r), desc, os.TempDir())
		if err != nil {
			return nil, err
		}
		df, err := c.waitEnded(ctx, id, 2*time.Minute)
		if err != nil {
			_ = c.stop(ctx, id)
			return nil, err
		}
		s, err := readSummary(c.logPath(pl.consumer, id, "consumer"))
		if err != nil {
			return nil, fmt.Errorf("%s run %d (dataflow %s): %w", lc.name, r, df.Status, err)
		}
		d := make([]time.Duration, len(s.Latencies))
		for i, ns := range s.Latencies {
			d[i] = time.Duration(ns)
		}
		one := stats.NewDist(d)
		res.p50s = append(res.p50s, micros(one.Pct(50)))
		res.p99s = append(res.p99s, micros(one.Pct(99)))
		res.rates = append(res.rates, s.Rate)
		res.received += s.Received
		// Messages that never arrived: the node library's drops (s.Dropped) and, across
		// daemons, those of a full daemon<->daemon link queue.
		lost := uint64(max(lc.count-lc.warmup-s.Received, 0))
		res.dropped += max(s.Dropped, lost)
		all = append(all, d...)
	}
	res.all = stats.NewDist(all)
	return res, nil
}

func readSummary(path string) (*consumerSummary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("consumer log: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, summaryPrefix); ok {
			var s consumerSummary
			if err := json.Unmarshal([]byte(rest), &s); err != nil {
				return nil, fmt.Errorf("consumer summary: %w", err)
			}
			return &s, nil
		}
	}
	tail := string(b)
	if len(tail) > 500 {
		tail = tail[len(tail)-500:]
	}
	return nil, fmt.Errorf("no summary line in %s; log ends with:\n%s", path, tail)
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
