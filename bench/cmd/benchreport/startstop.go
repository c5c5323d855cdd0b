package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// sinkText is what the example's sink prints for every message it receives.
const sinkText = "sink received message"

// startStopResult holds figures 1 and 2: per cycle, start to the sink's first message,
// the start request alone, and the stop request's wall time.
type startStopResult struct {
	firstMsg, startReq, stop []time.Duration
}

// runStartStop starts the example dataflow, waits for the sink's first message and stops
// it, cycles times.
func runStartStop(ctx context.Context, c *cluster, exampleDir string, cycles int) (*startStopResult, error) {
	desc, err := os.ReadFile(filepath.Join(exampleDir, "dataflow.yml"))
	if err != nil {
		return nil, fmt.Errorf("example descriptor: %w", err)
	}
	res := &startStopResult{}
	for i := range cycles {
		t0 := time.Now()
		id, err := c.start(ctx, fmt.Sprintf("example-%d", i), string(desc), exampleDir)
		if err != nil {
			return nil, err
		}
		res.startReq = append(res.startReq, time.Since(t0))
		if err := pollFor(ctx, 10*time.Second, func() error { return c.logContains(id, "rust-sink", sinkText) }); err != nil {
			return nil, fmt.Errorf("cycle %d: sink's first message: %w", i, err)
		}
		res.firstMsg = append(res.firstMsg, time.Since(t0))
		// Let the dataflow run a little, as a user would, before stopping it.
		time.Sleep(100 * time.Millisecond)
		t1 := time.Now()
		if err := c.stop(ctx, id); err != nil {
			return nil, fmt.Errorf("cycle %d: %w", i, err)
		}
		res.stop = append(res.stop, time.Since(t1))
	}
	return res, nil
}

// pollFor calls f every millisecond until it returns nil or within passes.
func pollFor(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if err != errNotYet {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
