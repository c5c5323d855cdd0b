package main

import (
	"slices"
	"time"
)

// dist is a sorted sample of durations.
type dist []time.Duration

func newDist(v []time.Duration) dist {
	d := slices.Clone(v)
	slices.Sort(d)
	return d
}

// pct is the p-th percentile (nearest rank), 0 for an empty sample.
func (d dist) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p/100*float64(len(d))+0.5) - 1
	i = max(0, min(i, len(d)-1))
	return d[i]
}

func (d dist) median() time.Duration { return d.pct(50) }

// medianF is the median of a float sample.
func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
