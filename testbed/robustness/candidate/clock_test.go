package main

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestSkewedClockRunsAtItsRate: at rate 2 the clock reads twice the real
// time passed and its waits last half as long; a change of rate keeps the
// reading continuous.
func TestSkewedClockRunsAtItsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSkewedClock()
		start := c.Now()
		time.Sleep(time.Second)
		if got := c.Since(start); got != time.Second {
			t.Fatalf("at rate 1, one real second reads as %v", got)
		}
		c.SetRate(2)
		if got := c.Since(start); got != time.Second {
			t.Fatalf("a change of rate moved the reading: %v, want 1s", got)
		}
		time.Sleep(time.Second)
		if got := c.Since(start); got != 3*time.Second {
			t.Fatalf("at rate 2, one more real second reads as %v since start, want 3s", got)
		}
		began := time.Now()
		timer := c.NewTimer(4 * time.Second)
		<-timer.C()
		if real := time.Since(began); real != 2*time.Second {
			t.Fatalf("a 4s timer at rate 2 fired after %v of real time, want 2s", real)
		}
		began = time.Now()
		done := make(chan struct{})
		c.AfterFunc(time.Second, func() { close(done) })
		<-done
		if real := time.Since(began); real != 500*time.Millisecond {
			t.Fatalf("a 1s AfterFunc at rate 2 ran after %v of real time, want 500ms", real)
		}
		c.SetRate(0.5)
		began = time.Now()
		c.Sleep(time.Second)
		if real := time.Since(began); real != 2*time.Second {
			t.Fatalf("a 1s sleep at rate 0.5 took %v of real time, want 2s", real)
		}
	})
}
