// Package gate bounds how many requests the locks of a process send at once
// through one client, and lets a leader's requests go first. It is a
// process-wide registry, not API: k8sresourcelock's Lease lock is its only
// user.
package gate

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
)

// Why a gate. A process that is a candidate in thousands of elections
// starts them all at once: every candidate reads its lock, and the leaders
// it wins renew together. Sent at once through one client, those requests
// outnumber the streams one HTTP/2 connection may carry (250 by Go's
// default, 1000 on kube-apiserver), and the client dials a new connection
// for each request over the limit: thousands of TLS handshakes, each one
// the API server pays for, until the dials time out or the ports run out,
// and the leaders' renewals, queued behind the candidates' reads, miss
// their deadlines. The gate keeps a process's lock requests on one
// client within InFlight, queues the rest in the process, where waiting is
// free, and serves a leader's before a candidate's, with places kept for
// leaders alone: a candidate that waits loses time, a leader that waits past
// its renew deadline loses its term.

// InFlight is how many lock requests one client may have in flight at
// once: well within one HTTP/2 connection's streams, with room left for the
// watches that share it, and far more than an API server answering in tens
// of milliseconds needs to serve thousands of requests a second.
const InFlight = 100

// CandidatesInFlight bounds the requests in flight when a candidate's is
// let in: the places above it are kept for leaders alone, since a
// candidate's request may take up to a minute (an API server slow to
// answer reads, a connection that died), and a leader's renewal must not
// wait for it, however many of them there are.
const CandidatesInFlight = InFlight * 3 / 4

// Priority orders the requests that wait for a place.
type Priority int

const (
	// Candidate is the priority of a candidate's requests.
	Candidate Priority = iota
	// Leader is the priority of the requests of a leader (its renewals,
	// its release, its answer to a handoff): each waits first.
	Leader
)

// String names the requests of priority p.
func (p Priority) String() string {
	if p == Leader {
		return "leader"
	}
	return "candidate"
}

type leaderKey struct{}

// WithLeader marks ctx as carrying a leader's requests.
func WithLeader(ctx context.Context) context.Context {
	return context.WithValue(ctx, leaderKey{}, true)
}

// PriorityOf is the priority ctx carries: Leader if WithLeader marked it.
func PriorityOf(ctx context.Context) Priority {
	if leader, _ := ctx.Value(leaderKey{}).(bool); leader {
		return Leader
	}
	return Candidate
}

// gate is the state of one client's gate.
type gate struct {
	inFlight int
	// waiting holds, per priority, the channels of the requests that wait,
	// first come first: each is closed when its request is given a place.
	waiting [Leader + 1]list.List
}

// gates holds the gate of each client with requests in flight or waiting;
// one with neither is dropped, so that a client the process let go of is
// not kept.
var gates = struct {
	sync.Mutex
	byClient map[any]*gate
}{byClient: map[any]*gate{}}

// Enter waits until a request through client may be sent, at the priority
// ctx carries (see WithLeader), and returns the func to call once it has
// been answered; it fails, sending nothing, when ctx is done first. A
// client that cannot be a map key (not a non-nil pointer, as every typed
// client is) is not gated.
func Enter(ctx context.Context, client any) (leave func(), err error) {
	if !nilness.Key(client) {
		return func() {}, nil
	}
	p := PriorityOf(ctx)
	gates.Lock()
	g := gates.byClient[client]
	if g == nil {
		g = &gate{}
		gates.byClient[client] = g
	}
	if g.inFlight < limit(p) && !g.queuedAtOrAbove(p) {
		g.inFlight++
		gates.Unlock()
		return leaving(client, g), nil
	}
	turn := make(chan struct{})
	place := g.waiting[p].PushBack(turn)
	gates.Unlock()

	select {
	case <-turn:
		return leaving(client, g), nil
	case <-ctx.Done():
	}
	gates.Lock()
	select {
	case <-turn:
		// Given a place as ctx ended: pass it on.
		gates.Unlock()
		leaving(client, g)()
	default:
		g.waiting[p].Remove(place)
		g.dropIfIdle(client)
		gates.Unlock()
	}
	return nil, fmt.Errorf("waiting for one of the %d places for a %s's request the process's locks have on this client: %w", limit(p), p, context.Cause(ctx))
}

// queuedAtOrAbove reports whether a request of priority p or higher waits:
// a new one goes behind it.
func (g *gate) queuedAtOrAbove(p Priority) bool {
	for q := p; q <= Leader; q++ {
		if g.waiting[q].Len() > 0 {
			return true
		}
	}
	return false
}

// leaving returns the func that gives up a place in g, to the requests
// that wait (see admit). Calls after the first do nothing.
func leaving(client any, g *gate) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			gates.Lock()
			defer gates.Unlock()
			g.inFlight--
			g.admit()
			g.dropIfIdle(client)
		})
	}
}

// admit gives the places that are free to the requests that wait, the
// highest priority first, each within its priority's limit. gates must be
// locked.
func (g *gate) admit() {
	for p := Leader; p >= Candidate; p-- {
		for g.inFlight < limit(p) && g.waiting[p].Len() > 0 {
			g.inFlight++
			close(g.waiting[p].Remove(g.waiting[p].Front()).(chan struct{}))
		}
	}
}

// limit is how many requests may be in flight when one of priority p is
// let in.
func limit(p Priority) int {
	if p == Leader {
		return InFlight
	}
	return CandidatesInFlight
}

// dropIfIdle forgets g when nothing is in flight or waits. gates must be
// locked.
func (g *gate) dropIfIdle(client any) {
	if g.inFlight == 0 && !g.queuedAtOrAbove(Candidate) && gates.byClient[client] == g {
		delete(gates.byClient, client)
	}
}

// Clients is how many clients have a gate: requests in flight or waiting.
func Clients() int {
	gates.Lock()
	defer gates.Unlock()
	return len(gates.byClient)
}
