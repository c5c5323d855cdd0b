// Package waitgroup waits for a sync.WaitGroup with a bound.
package waitgroup

import (
	"sync"
	"time"
)

// Within waits for wg at most d and reports whether it finished.
func Within(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
