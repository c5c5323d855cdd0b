package daemon

import (
	"context"
	"time"

	"github.com/doractl/doractl/proto"
)

// startTimers runs one ticker per interval of the dataflow's dora/timer inputs until ctx is
// done. Each tick is pushed to every subscribed input (dropping the oldest when full).
func startTimers(ctx context.Context, timers map[time.Duration][]route) {
	for interval, routes := range timers {
		go func(interval time.Duration, routes []route) {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					m := message{md: proto.Metadata{Timestamp: now.UnixNano()}}
					for _, rt := range routes {
						rt.box.push(rt.input, m)
					}
				}
			}
		}(interval, routes)
	}
}
