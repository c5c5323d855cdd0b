package daemon

import (
	"math/rand/v2"
	"time"
)

// backoff is an exponential delay with jitter between reconnect attempts.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, cur: min}
}

// next returns the delay before the next attempt: uniformly in [cur/2, cur], with cur
// doubling up to max. The jitter keeps a fleet of daemons from reconnecting in step.
func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// reset starts again from min after a success.
func (b *backoff) reset() { b.cur = b.min }
