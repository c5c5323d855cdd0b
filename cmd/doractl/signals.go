package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// signalContext is cancelled on the first SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// duplicateSignalWindow is how soon after the first signal another one is taken for a
// duplicate delivery rather than a second Ctrl-C.
const duplicateSignalWindow = 50 * time.Millisecond

// twoStageSignals returns a context cancelled by the first SIGINT/SIGTERM (graceful) and a
// second one cancelled by the next signal (force).
func twoStageSignals(parent context.Context) (graceful, force context.Context, stop func()) {
	graceful, cancelGraceful := context.WithCancel(parent)
	force, cancelForce := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		var first time.Time
		for {
			select {
			case <-done:
				return
			case <-sigs:
				switch {
				case first.IsZero():
					first = time.Now()
					cancelGraceful()
				case time.Since(first) < duplicateSignalWindow:
					// The same signal delivered twice (e.g. `timeout` signals the child and
					// then its process group): not a second Ctrl-C.
				default:
					cancelForce()
				}
			}
		}
	}()
	return graceful, force, func() {
		signal.Stop(sigs)
		close(done)
		cancelGraceful()
		cancelForce()
	}
}
