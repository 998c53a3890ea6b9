package main

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// skewedClock runs at a rate the harness sets (1 is real time, 2 twice as
// fast): what the elector reads as Now advances rate times as fast as real
// time, and what it waits for lasts 1/rate of the real time. A change of rate
// applies to readings from then on and to waits started after it; a wait in
// progress keeps the rate it started with, as a process whose clock drifts
// would.
type skewedClock struct {
	mu sync.Mutex
	// base and realBase are the skewed and real readings at the last
	// change of rate.
	base, realBase time.Time
	rate           float64
}

var _ clock.WithTickerAndDelayedExecution = (*skewedClock)(nil)

func newSkewedClock() *skewedClock {
	now := time.Now()
	return &skewedClock{base: now, realBase: now, rate: 1}
}

// SetRate changes the rate from now on.
func (c *skewedClock) SetRate(rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.base = c.nowLocked(now)
	c.realBase = now
	c.rate = rate
}

func (c *skewedClock) nowLocked(real time.Time) time.Time {
	return c.base.Add(time.Duration(float64(real.Sub(c.realBase)) * c.rate))
}

func (c *skewedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(time.Now())
}

func (c *skewedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// real is how long a wait of d on this clock lasts in real time.
func (c *skewedClock) real(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(float64(d) / c.rate)
}

func (c *skewedClock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

func (c *skewedClock) NewTimer(d time.Duration) clock.Timer {
	return &skewedTimer{clock: c, timer: time.NewTimer(c.real(d))}
}

func (c *skewedClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return &skewedTimer{clock: c, timer: time.AfterFunc(c.real(d), f)}
}

func (c *skewedClock) Sleep(d time.Duration) { time.Sleep(c.real(d)) }

func (c *skewedClock) Tick(d time.Duration) <-chan time.Time { return c.NewTicker(d).C() }

func (c *skewedClock) NewTicker(d time.Duration) clock.Ticker {
	return &skewedTicker{time.NewTicker(c.real(d))}
}

type skewedTimer struct {
	clock *skewedClock
	timer *time.Timer
}

func (t *skewedTimer) C() <-chan time.Time { return t.timer.C }
func (t *skewedTimer) Stop() bool          { return t.timer.Stop() }
func (t *skewedTimer) Reset(d time.Duration) bool {
	return t.timer.Reset(t.clock.real(d))
}

type skewedTicker struct{ ticker *time.Ticker }

func (t *skewedTicker) C() <-chan time.Time { return t.ticker.C }
func (t *skewedTicker) Stop()               { t.ticker.Stop() }
