package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/doractl/doractl/node"
)

// SummaryPrefix starts the consumer's summary line; the JSON of a Summary follows.
const SummaryPrefix = "LATENCY "

// Summary is what the consumer prints when the run ends. Latencies are in nanoseconds,
// sorted; the rate is messages per second between the first and the last arrival.
type Summary struct {
	Received  int     `json:"received"`
	Dropped   uint64  `json:"dropped"`
	Bytes     int     `json:"bytes"`
	Rate      float64 `json:"rate"`
	Latencies []int64 `json:"latencies_ns"`
}

// summary accumulates a consumer's observations.
type summary struct {
	Summary
	seen        int
	first, last time.Time
}

func (s *summary) record(now time.Time, ev node.Event, warmup int) {
	s.seen++
	if s.seen <= warmup {
		return
	}
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	s.Received++
	s.Dropped = ev.Dropped
	s.Bytes = len(ev.Data)
	s.Latencies = append(s.Latencies, now.UnixNano()-ev.Metadata.Timestamp)
}

func (s *summary) line() (string, error) {
	if el := s.last.Sub(s.first); s.Received > 1 && el > 0 {
		s.Rate = float64(s.Received-1) / el.Seconds()
	}
	slices.Sort(s.Latencies)
	b, err := json.Marshal(&s.Summary)
	if err != nil {
		return "", fmt.Errorf("summary: %w", err)
	}
	return SummaryPrefix + string(b), nil
}
