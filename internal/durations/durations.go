// Package durations does the arithmetic of durations the library needs
// without wrapping around: a StopTimeout of math.MaxInt64 means "as long as
// it takes", and seconds read from a record that anyone can write may be
// any int. Every sum and conversion of such values goes through here.
package durations

import (
	"math"
	"time"
)

// WholeSeconds rounds d up to whole seconds, and at least one, so that the
// lease others wait out is never shorter than the one configured. It does
// not overflow: d is divided before it is rounded.
func WholeSeconds(d time.Duration) int {
	secs := d / time.Second
	if d%time.Second > 0 {
		secs++
	}
	return int(max(secs, 1))
}

// Max is the longest time.Duration, about 292 years: "for ever" to
// a sum that reaches it.
const Max = time.Duration(math.MaxInt64)

// Add is the sum of ds, saturated at the longest and the shortest
// Duration instead of wrapping around: a StopTimeout of math.MaxInt64 means
// "wait as long as it takes", and a sum with it must stay that long, not
// turn negative (an offer of a second, a deadline in the past).
func Add(ds ...time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		switch {
		case d > 0 && sum > Max-d:
			sum = Max
		case d < 0 && sum < math.MinInt64-d:
			sum = math.MinInt64
		default:
			sum += d
		}
	}
	return sum
}

// Seconds is n seconds as a Duration, saturated as Add is: n comes
// from a record that anyone can write.
func Seconds(n int) time.Duration {
	switch {
	case n > int(Max/time.Second):
		return Max
	case n < int(math.MinInt64/time.Second):
		return math.MinInt64
	}
	return time.Duration(n) * time.Second
}

// Scale is d times f, saturated as Add is; f must not be negative. A
// float product of a long Duration may not fit one.
func Scale(d time.Duration, f float64) time.Duration {
	p := float64(d) * f
	switch {
	case p >= float64(Max):
		return Max
	case p <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(p)
}
