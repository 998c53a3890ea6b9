package k8sresourcelock

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock/internal/gate"
)

// RequestsInFlight is how many requests the Lease locks of a process may
// have in flight at once through one client; a candidate's request is let
// in only while fewer than three quarters of them are, the rest being kept
// for leaders. The others wait in the process, a leader's ahead of a
// candidate's (see WithLeaderPriority). A process that is a candidate in
// thousands of elections would otherwise send thousands of requests at once
// as it starts: more than one HTTP/2 connection carries, so the client
// dials a connection for each request over the limit, and the leaders'
// renewals queue behind the candidates' reads. Each request still ends
// with its context: one that waits for a place until then fails without
// being sent. A client with no connection (client-go's fake, whose
// RESTClient is nil) is not gated.
const RequestsInFlight = gate.InFlight

// WithLeaderPriority marks ctx as carrying the requests of the lock's
// holder (its renewals, its release, its answer to a handoff): a Lease lock
// sends them ahead of the requests of candidates waiting for a place on
// the same client, and into places no candidate's request may take, so
// that candidates' requests the API server is slow to answer never hold a
// renewal up (see RequestsInFlight). A candidate waits and loses only time;
// a leader whose renewal waits past its renew deadline loses its term. An
// elector of this module marks its own requests.
func WithLeaderPriority(ctx context.Context) context.Context {
	return gate.WithLeader(ctx)
}

// HasLeaderPriority reports whether WithLeaderPriority marked ctx: a
// custom lock that queues its own requests can serve them first, too.
func HasLeaderPriority(ctx context.Context) bool {
	return gate.PriorityOf(ctx) == gate.Leader
}

// sendThrough waits for a place for one request through client (see
// RequestsInFlight) and returns the func to call once it has been answered.
// A client with no connection to spare (client-go's fake, whose RESTClient
// is nil) is not gated: tests share one among electors in synctest bubbles
// of their own, and a place given back in one bubble must not wake a
// request of another, which the runtime punishes by ending the process.
// key, if not nil, names the gate instead of client.
func sendThrough(ctx context.Context, client, key any, lock string) (func(), error) {
	if c, ok := client.(interface{ RESTClient() rest.Interface }); ok && isNilValue(c.RESTClient()) {
		return func() {}, nil
	}
	if key == nil {
		key = client
	}
	leave, err := gate.Enter(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("lease lock %s: %w", lock, err)
	}
	return leave, nil
}
