package stats

import (
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	v := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	d := NewDist(v)
	if d.Median() != 5 || d.Pct(99) != 10 || d.Pct(0) != 1 {
		t.Errorf("Dist: median %d p99 %d p0 %d", d.Median(), d.Pct(99), d.Pct(0))
	}
	// The two rank rules differ when p/100·n has a fraction below one half.
	if got := NewDist(v[:3]).Pct(77); got != 4 {
		t.Errorf("Pct(77) of 3 = %d, want 4 (rank round(2.31) = 2)", got)
	}
	if got := NearestRank(v[:3], 77); got != 5 {
		t.Errorf("NearestRank(77) of 3 = %d, want 5 (rank ceil(2.31) = 3)", got)
	}
	if v[0] != 5 {
		t.Error("input modified")
	}
	if MedianF([]float64{3, 1, 2, 4}) != 2.5 || MedianF(nil) != 0 {
		t.Error("MedianF")
	}
}
