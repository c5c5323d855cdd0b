// Command latency-node is the two-node benchmark of doractl's message path. As a
// producer it waits for the consumer's "ready" message, then sends -count messages of
// -size bytes on output "data", one every -interval (0: back to back); the send time
// travels as the metadata timestamp. As a consumer it records receive time minus
// timestamp for every message and prints one summary line (see summary.go) when its
// input closes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/doractl/doractl/node"
)

func main() {
	role := flag.String("role", "", "producer or consumer")
	size := flag.Int("size", 8, "payload bytes (producer)")
	count := flag.Int("count", 1000, "messages to send (producer)")
	interval := flag.Duration("interval", time.Millisecond, "time between sends, 0 = back to back (producer)")
	warmup := flag.Int("warmup", 0, "first messages left out of the figures (consumer)")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	switch *role {
	case "producer":
		err = withNode(ctx, func(n *node.Node) error { return produce(ctx, n, *size, *count, *interval) })
	case "consumer":
		err = withNode(ctx, func(n *node.Node) error { return consume(ctx, n, *warmup) })
	default:
		err = fmt.Errorf("-role must be producer or consumer, got %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency-node:", err)
		os.Exit(1)
	}
}

func withNode(ctx context.Context, f func(*node.Node) error) error {
	n, err := node.Init(ctx)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	ferr := f(n)
	if cerr := n.Close(); cerr != nil && ferr == nil {
		ferr = fmt.Errorf("close: %w", cerr)
	}
	return ferr
}

// errStopped says the node was asked to stop before its work was done.
var errStopped = errors.New("stopped before the end of the run")

// produce waits for the consumer, then sends the messages at the given pace.
func produce(ctx context.Context, n *node.Node, size, count int, interval time.Duration) error {
	if err := awaitReady(ctx, n); err != nil {
		return err
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	next := time.Now()
	for i := 0; i < count; i++ {
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		if err := n.Send("data", data); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if ctx.Err() != nil {
			return errStopped
		}
	}
	return nil
}

// awaitReady returns once the consumer's "ready" message arrived.
func awaitReady(ctx context.Context, n *node.Node) error {
	for {
		select {
		case <-ctx.Done():
			return errStopped
		case ev, ok := <-n.Events():
			if !ok || ev.Type == node.EventStop || ev.Type == node.EventAllInputsClosed {
				return errStopped
			}
			if ev.Type == node.EventInput && ev.ID == "ready" {
				return nil
			}
		}
	}
}

// consume announces itself, then records latencies until its data input closes.
func consume(ctx context.Context, n *node.Node, warmup int) error {
	if err := n.Send("ready", nil); err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	var s summary
	for {
		select {
		case <-ctx.Done():
			return errStopped
		case ev, ok := <-n.Events():
			if !ok || ev.Type == node.EventStop {
				return errStopped
			}
			switch ev.Type {
			case node.EventInput:
				s.record(time.Now(), ev, warmup)
			case node.EventInputClosed, node.EventAllInputsClosed:
				line, err := s.line()
				if err != nil {
					return err
				}
				fmt.Println(line)
				return nil
			}
		}
	}
}
