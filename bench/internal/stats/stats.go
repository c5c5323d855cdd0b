// Package stats holds the sample statistics the benchmark drivers under bench/cmd share:
// percentiles of duration samples and the median of a float sample.
package stats

import (
	"math"
	"slices"
	"time"
)

// Dist is a sorted sample of durations.
type Dist []time.Duration

// NewDist sorts a copy of v.
func NewDist(v []time.Duration) Dist {
	d := slices.Clone(v)
	slices.Sort(d)
	return d
}

// Pct is the p-th percentile with the rank rounded to the nearest integer
// (round(p/100·n)), 0 for an empty sample.
func (d Dist) Pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p/100*float64(len(d))+0.5) - 1
	i = max(0, min(i, len(d)-1))
	return d[i]
}

// Median is Pct(50).
func (d Dist) Median() time.Duration { return d.Pct(50) }

// NearestRank is the p-th percentile of v by the nearest-rank method (rank
// ceil(p/100·n)), 0 for an empty sample. v is not modified.
func NearestRank(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// MedianF is the median of a float sample (the mean of the middle two for an even
// count), 0 for an empty sample.
func MedianF(v []float64) float64 {
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
