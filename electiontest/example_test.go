package electiontest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// A canary replica leads, the default revision takes the lock from it, and
// when the default revision's replica dies the canary, which stayed in the
// race, leads again once the dead holder's lease has run out on the fake
// clock: no API server, and no waiting out real leases.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := electiontest.New("istio-system", "istio-leader")

	lec := e.Config("canary-1", "canary")
	lec.KeyComparison = func(holderKey string) bool { return false } // a canary never preempts
	replica, err := e.Start(ctx, lec, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	term, err := replica.WaitLeading(ctx, 1)
	fmt.Println("canary-1 leads:", err == nil)

	_ = e.Hold(ctx, "stable-1", "stable") // the default revision takes over
	_ = e.AdvanceUntil(ctx, func() bool { return term.Err() != nil })
	fmt.Println("canary-1's first term is over:", replica.WaitNewLeader(ctx, "stable-1") == nil)

	// stable-1 dies without releasing: its lease runs out on the clock.
	err = e.AdvanceUntil(ctx, func() bool { return replica.Terms() == 2 })
	holder, _, _ := e.Holder(ctx)
	fmt.Println("canary-1 leads again:", err == nil, holder)

	cancel()
	<-replica.Done()
	// Output:
	// canary-1 leads: true
	// canary-1's first term is over: true
	// canary-1 leads again: true canary-1
}
