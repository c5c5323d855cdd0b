package daemon

import (
	"fmt"
	"testing"
	"time"
)

// recorder is an eventSender that keeps what it is sent; with gate set, every Notify
// waits for a token first (a slow consumer).
type recorder struct {
	events chan delivery
	gate   chan struct{}
}

func newRecorder(gated bool) *recorder {
	r := &recorder{events: make(chan delivery, 100000)}
	if gated {
		r.gate = make(chan struct{})
	}
	return r
}

func (r *recorder) Notify(typ string, msg any) error {
	if r.gate != nil {
		<-r.gate
	}
	r.events <- delivery{typ: typ, msg: msg}
	return nil
}

// next waits for the next event.
func (r *recorder) next(t testing.TB, timeout time.Duration) delivery {
	t.Helper()
	select {
	case d := <-r.events:
		return d
	case <-time.After(timeout):
		t.Fatalf("no event within %s", timeout)
		return delivery{}
	}
}

func payload(i int) []byte { return []byte(fmt.Sprintf("m%d", i)) }
