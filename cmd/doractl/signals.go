package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// signalContext is cancelled on the first SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// twoStageSignals returns a context cancelled by the first SIGINT/SIGTERM (graceful) and a
// second one cancelled by the next signal (force).
func twoStageSignals(parent context.Context) (graceful, force context.Context, stop func()) {
	graceful, cancelGraceful := context.WithCancel(parent)
	force, cancelForce := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case <-sigs:
				n++
				if n == 1 {
					cancelGraceful()
				} else {
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
