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

var leader = WithLeader(context.Background())

// fill sends n requests of ctx's priority through c, each given a place at
// once, and returns the funcs that give the places back.
func fill(t *testing.T, ctx context.Context, c *client, n int) []func() {
	t.Helper()
	leaves := make([]func(), n)
	for i := range leaves {
		leave, err := Enter(ctx, c)
		if err != nil {
			t.Fatalf("request %d of %d: %v", i+1, n, err)
		}
		leaves[i] = leave
	}
	return leaves
}

func leaveAll(leaves ...[]func()) {
	for _, ls := range leaves {
		for _, leave := range ls {
			leave()
		}
	}
}

// enterLater starts a request that waits for a place on c and reports on
// got when it has one; it keeps the place until let is closed.
func enterLater(ctx context.Context, c *client, got chan<- string, let <-chan struct{}, name string) {
	go func() {
		leave, err := Enter(ctx, c)
		if err != nil {
			got <- name + ": " + err.Error()
			return
		}
		got <- name
		<-let
		leave()
	}()
}

// nothingOn fails if a request was given a place.
func nothingOn(t *testing.T, got <-chan string, why string) {
	t.Helper()
	synctest.Wait()
	select {
	case name := <-got:
		t.Fatalf("%s was given a place %s", name, why)
	default:
	}
}

func TestCandidatePastItsLimitWaitsForAPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		candidates := fill(t, context.Background(), c, CandidatesInFlight)
		got, let := make(chan string, 1), make(chan struct{})
		defer close(let)
		enterLater(context.Background(), c, got, let, "extra candidate")
		nothingOn(t, got, "with every candidates' place taken")
		candidates[0]()
		if name := <-got; name != "extra candidate" {
			t.Fatalf("got %q, want the waiting request given the place given back", name)
		}
		leaveAll(candidates[1:])
	})
}

func TestLeadersHavePlacesNoCandidateTakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		candidates := fill(t, context.Background(), c, CandidatesInFlight)
		// A leader still finds a place at once, however many candidates'
		// requests hang.
		leaders := fill(t, leader, c, InFlight-CandidatesInFlight)
		got, let := make(chan string, 1), make(chan struct{})
		defer close(let)
		enterLater(leader, c, got, let, "extra leader")
		nothingOn(t, got, "with every place taken")
		leaders[0]()
		if name := <-got; name != "extra leader" {
			t.Fatalf("got %q, want the waiting leader given the place", name)
		}
		leaveAll(candidates, leaders[1:])
	})
}

func TestLeadersRequestGoesBeforeWaitingCandidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		candidates := fill(t, context.Background(), c, CandidatesInFlight)
		leaders := fill(t, leader, c, InFlight-CandidatesInFlight)
		got, let := make(chan string, 3), make(chan struct{})
		enterLater(context.Background(), c, got, let, "candidate 1")
		synctest.Wait()
		enterLater(context.Background(), c, got, let, "candidate 2")
		synctest.Wait()
		enterLater(leader, c, got, let, "leader")
		synctest.Wait()
		candidates[0]()
		if name := <-got; name != "leader" {
			t.Fatalf("first place went to %q, want the leader's renewal ahead of the candidates", name)
		}
		nothingOn(t, got, "while the leaders held more than the leaders' own places")
		close(let)
		leaveAll(leaders)
		// Candidates, first come first.
		if name := <-got; name != "candidate 1" {
			t.Fatalf("next place went to %q, want candidate 1, who waited longest", name)
		}
		if name := <-got; name != "candidate 2" {
			t.Fatalf("last place went to %q, want candidate 2", name)
		}
		leaveAll(candidates[1:])
		synctest.Wait()
		if n := Clients(); n != 0 {
			t.Fatalf("%d gates kept with nothing in flight", n)
		}
	})
}

func TestRequestWhoseContextEndsWhileWaitingIsNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &client{}
		candidates := fill(t, context.Background(), c, CandidatesInFlight)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		leave, err := Enter(ctx, c)
		if err == nil {
			leave()
			t.Fatal("a candidate's request was given a place past the limit")
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "places for a candidate's request") {
			t.Fatalf("err = %v, want the context's end, saying what the request waited for", err)
		}
		// It left the queue: a place given back now stays free.
		candidates[0]()
		if leave, err := Enter(context.Background(), c); err != nil {
			t.Fatalf("the place given back went to a request that had given up: %v", err)
		} else {
			leave()
		}
		leaveAll(candidates[1:])
		if n := Clients(); n != 0 {
			t.Fatalf("%d gates kept after every request left", n)
		}
	})
}

func TestLeavingTwiceGivesBackOnePlace(t *testing.T) {
	c := &client{}
	candidates := fill(t, context.Background(), c, CandidatesInFlight)
	candidates[0]()
	candidates[0]()
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
	leaveAll(candidates[1:])
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
// than InFlight in flight, nor CandidatesInFlight candidates', every one
// that did not give up is sent, and no gate is kept once they are done.
func TestGateUnderContentionKeepsItsBounds(t *testing.T) {
	c := &client{}
	var inFlight, candidatesInFlight, most, mostCandidates, sent, gaveUp atomic.Int64
	raise := func(max *atomic.Int64, n int64) {
		for m := max.Load(); n > m && !max.CompareAndSwap(m, n); m = max.Load() {
		}
	}
	var wg sync.WaitGroup
	const requests = 20 * InFlight
	for i := range requests {
		wg.Go(func() {
			ctx := context.Background()
			isLeader := i%3 == 0
			if isLeader {
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
			raise(&most, inFlight.Add(1))
			if !isLeader {
				raise(&mostCandidates, candidatesInFlight.Add(1))
			}
			for range rand.IntN(5) {
				runtime.Gosched()
			}
			if !isLeader {
				candidatesInFlight.Add(-1)
			}
			inFlight.Add(-1)
			sent.Add(1)
			leave()
		})
	}
	wg.Wait()
	if m := most.Load(); m > InFlight {
		t.Fatalf("%d requests were in flight at once, want at most %d", m, InFlight)
	}
	if m := mostCandidates.Load(); m > CandidatesInFlight {
		t.Fatalf("%d candidates' requests were in flight at once, want at most %d", m, CandidatesInFlight)
	}
	if s, g := sent.Load(), gaveUp.Load(); s+g != requests {
		t.Fatalf("%d sent and %d gave up, of %d", s, g, requests)
	}
	if n := Clients(); n != 0 {
		t.Fatalf("%d gates kept after every request left", n)
	}
}
