package gate

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type client struct{ name string }

// fill takes every place of c's gate and returns the funcs that give them
// back.
func fill(t *testing.T, c *client) []func() {
	t.Helper()
	leaves := make([]func(), InFlight)
	for i := range leaves {
		leave, err := Enter(context.Background(), c)
		if err != nil {
			t.Fatalf("request %d of %d: %v", i+1, InFlight, err)
		}
		leaves[i] = leave
	}
	return leaves
}

// enterLater starts a request that waits for a place on c and reports on
// the returned channel when it has one.
func enterLater(ctx context.Context, c *client, got chan<- string, name string) {
	go func() {
		leave, err := Enter(ctx, c)
		if err != nil {
			got <- name + ": " + err.Error()
			return
		}
		got <- name
		leave()
	}()
}

func TestRequestPastTheLimitWaitsForAPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		leaves := fill(t, c)
		got := make(chan string, 1)
		enterLater(context.Background(), c, got, "extra")
		synctest.Wait()
		select {
		case name := <-got:
			t.Fatalf("%s was sent with %d requests in flight", name, InFlight)
		default:
		}
		leaves[0]()
		if name := <-got; name != "extra" {
			t.Fatalf("got %q, want the waiting request sent once a place was free", name)
		}
		for _, leave := range leaves[1:] {
			leave()
		}
		if n := Clients(); n != 0 {
			t.Fatalf("%d gates kept with nothing in flight", n)
		}
	})
}

func TestLeadersRequestGoesBeforeWaitingCandidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		leaves := fill(t, c)
		got := make(chan string, 3)
		enterLater(context.Background(), c, got, "candidate 1")
		synctest.Wait()
		enterLater(context.Background(), c, got, "candidate 2")
		synctest.Wait()
		enterLater(WithLeader(context.Background()), c, got, "leader")
		synctest.Wait()
		leaves[0]()
		if name := <-got; name != "leader" {
			t.Fatalf("first place went to %q, want the leader's renewal ahead of the candidates", name)
		}
		// The leader's request gave its place back: candidates, first come first.
		if name := <-got; name != "candidate 1" {
			t.Fatalf("next place went to %q, want candidate 1, who waited longest", name)
		}
		if name := <-got; name != "candidate 2" {
			t.Fatalf("last place went to %q, want candidate 2", name)
		}
		for _, leave := range leaves[1:] {
			leave()
		}
	})
}

func TestRequestWhoseContextEndsWhileWaitingIsNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		leaves := fill(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		leave, err := Enter(ctx, c)
		if err == nil {
			leave()
			t.Fatal("a request was given a place past the limit")
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "in flight") {
			t.Fatalf("err = %v, want the context's end, saying what the request waited for", err)
		}
		// It left the queue: a place given back now stays free.
		leaves[0]()
		if leave, err := Enter(context.Background(), c); err != nil {
			t.Fatalf("the place given back went to a request that had given up: %v", err)
		} else {
			leave()
		}
		for _, leave := range leaves[1:] {
			leave()
		}
		if n := Clients(); n != 0 {
			t.Fatalf("%d gates kept after every request left", n)
		}
	})
}

func TestLeavingTwiceGivesBackOnePlace(t *testing.T) {
	c := &client{}
	leaves := fill(t, c)
	leaves[0]()
	leaves[0]()
	// One place is free, not two.
	leave, err := Enter(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if extra, err := Enter(ctx, c); err == nil {
		extra()
		t.Fatal("a second leave of one request freed a second place")
	}
	leave()
	for _, leave := range leaves[1:] {
		leave()
	}
	if n := Clients(); n != 0 {
		t.Fatalf("%d gates kept after every request left", n)
	}
}

func TestClientThatCannotBeAKeyIsNotGated(t *testing.T) {
	var typedNil *client
	for _, c := range []any{nil, typedNil, client{name: "a value"}} {
		for range InFlight + 1 {
			if _, err := Enter(context.Background(), c); err != nil {
				t.Fatalf("client %#v: %v", c, err)
			}
		}
	}
	if n := Clients(); n != 0 {
		t.Fatalf("%d gates kept for clients that cannot be keys", n)
	}
}

// Many requests of both priorities, some giving up as they wait: never more
// than InFlight in flight, every one that was not given up is sent, and no
// gate is kept once they are done.
func TestGateUnderContentionKeepsItsBound(t *testing.T) {
	c := &client{}
	var inFlight, most, sent, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 * InFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%3 == 0 {
				ctx = WithLeader(ctx)
			}
			if i%5 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(200))*time.Microsecond)
				defer cancel()
			}
			leave, err := Enter(ctx, c)
			if err != nil {
				gaveUp.Add(1)
				return
			}
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			for range rand.IntN(5) {
				runtime.Gosched()
			}
			inFlight.Add(-1)
			sent.Add(1)
			leave()
		}()
	}
	wg.Wait()
	if m := most.Load(); m > InFlight {
		t.Fatalf("%d requests were in flight at once, want at most %d", m, InFlight)
	}
	if s, g := sent.Load(), gaveUp.Load(); s+g != 20*InFlight {
		t.Fatalf("%d sent and %d gave up, of %d", s, g, 20*InFlight)
	}
	if n := Clients(); n != 0 {
		t.Fatalf("%d gates kept after every request left", n)
	}
}
