package durations

import (
	"math"
	"testing"
	"time"
)

// TestDurationArithmeticSaturates: sums of durations and durations made of
// seconds stay at the longest (or shortest) Duration instead of wrapping
// around, and rounding up to whole seconds does not overflow.
func TestDurationArithmeticSaturates(t *testing.T) {
	const longest, shortest = time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
	for _, tc := range []struct {
		ds   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{time.Second, 2 * time.Second}, 3 * time.Second},
		{[]time.Duration{2 * time.Second, longest, 10 * time.Second}, longest},
		{[]time.Duration{longest, longest}, longest},
		{[]time.Duration{longest - 1, 1}, longest},
		{[]time.Duration{longest, -time.Second}, longest - time.Second},
		{[]time.Duration{shortest, -1}, shortest},
		{[]time.Duration{shortest + 1, -2}, shortest},
		{[]time.Duration{shortest, longest}, -1},
	} {
		if got := Add(tc.ds...); got != tc.want {
			t.Errorf("Add(%v) = %v, want %v", tc.ds, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, 0},
		{15, 15 * time.Second},
		{-3, -3 * time.Second},
		{int(longest / time.Second), longest / time.Second * time.Second},
		{int(longest/time.Second) + 1, longest},
		{math.MaxInt, longest},
		{math.MinInt, shortest},
	} {
		if got := Seconds(tc.n); got != tc.want {
			t.Errorf("Seconds(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{shortest, 1},
		{0, 1},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{time.Second + 1, 2},
		{15 * time.Second, 15},
		{longest, int(longest/time.Second) + 1},
	} {
		if got := WholeSeconds(tc.d); got != tc.want {
			t.Errorf("WholeSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestScaleSaturatesInsteadOfWrapping(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		f    float64
		want time.Duration
	}{
		{2 * time.Second, 2.2, 4400 * time.Millisecond},
		{Max, 2.2, Max},
		{Max / 2, 3, Max},
		{math.MinInt64, 2, math.MinInt64},
		{time.Second, 0, 0},
	} {
		if got := Scale(c.d, c.f); got != c.want {
			t.Errorf("Scale(%v, %v) = %v, want %v", c.d, c.f, got, c.want)
		}
	}
}
