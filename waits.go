package k8sleaderelection

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/clock"
)

// Every wait of the elector is on its clock, so that a fake clock in tests
// moves timers and request deadlines alike.

// sleep waits for d on the elector's clock. It returns false, at once, if
// ctx is done first.
func (le *LeaderElector) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := le.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// woke says why waitFor returned.
type woke int

const (
	wokeByTimer woke = iota
	wokeByContext
	wokeByWatch
	wokeByOther
)

// waitFor waits for d on the elector's clock, for ctx to be done, for the
// watch to have news, or for other to be closed or signalled, whichever
// comes first. A nil other never is.
func (le *LeaderElector) waitFor(ctx context.Context, d time.Duration, other <-chan struct{}) woke {
	var timeout <-chan time.Time
	if d > 0 {
		t := le.clock.NewTimer(d)
		defer t.Stop()
		timeout = t.C()
	} else {
		expired := make(chan time.Time, 1)
		expired <- time.Time{}
		timeout = expired
	}
	select {
	case <-ctx.Done():
		return wokeByContext
	case <-le.watch.ready():
		return wokeByWatch
	case <-other:
		return wokeByOther
	case <-timeout:
		return wokeByTimer
	}
}

// withTimeout is context.WithTimeout on the elector's clock: with a fake
// clock in tests, the fake time moves request deadlines too.
func (le *LeaderElector) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, real := le.clock.(clock.RealClock); real {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := le.clock.AfterFunc(d, func() {
		cancel(fmt.Errorf("attempt took longer than %v: %w", d, context.DeadlineExceeded))
	})
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}
