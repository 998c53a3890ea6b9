package k8sresourcelock

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock/internal/gate"
)

// heldLeases is a client whose reads and updates stop at a barrier, each
// noting its arrival, until the test lets one through.
type heldLeases struct {
	coordinationv1client.LeasesGetter
	arrived chan string
	through chan struct{}
}

func (h *heldLeases) Leases(namespace string) coordinationv1client.LeaseInterface {
	return heldLeaseInterface{h.LeasesGetter.Leases(namespace), h}
}

type heldLeaseInterface struct {
	coordinationv1client.LeaseInterface
	h *heldLeases
}

func (i heldLeaseInterface) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	i.h.arrived <- "get " + name
	<-i.h.through
	return i.LeaseInterface.Get(ctx, name, opts)
}

func (i heldLeaseInterface) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	i.h.arrived <- "update " + lease.Name
	<-i.h.through
	return i.LeaseInterface.Update(ctx, lease, opts)
}

func heldLock(client *heldLeases, name string) *LeaseLock {
	return &LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Client: client,
		LockConfig: ResourceLockConfig{Identity: name}}
}

// The Lease locks of a process send at most RequestsInFlight requests at once
// through one client (a quarter of them kept for leaders); one more waits
// and, if its context ends first, fails unsent; a leader's renewal goes
// ahead of a candidate's read that waited longer.
func TestLeaseLocksSendAtMostRequestsInFlightThroughOneClientLeadersFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := &heldLeases{LeasesGetter: fakekube.New().CoordinationV1(),
			arrived: make(chan string, 2*RequestsInFlight), through: make(chan struct{})}
		leader := heldLock(client, "leader")
		if err := leader.Create(t.Context(), record("leader", "", 0)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		// Candidates' reads first, then leaders' in the places kept for them.
		for i := range RequestsInFlight {
			ctx := t.Context()
			if i >= gate.CandidatesInFlight {
				ctx = WithLeaderPriority(ctx)
			}
			wg.Go(func() { _, _, _ = heldLock(client, fmt.Sprint("lock-", i)).Get(ctx) })
			synctest.Wait()
		}
		if n := len(client.arrived); n != RequestsInFlight {
			t.Fatalf("%d requests sent, want %d", n, RequestsInFlight)
		}
		for range RequestsInFlight {
			<-client.arrived
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, _, err := heldLock(client, "late").Get(ctx)
		if err == nil || !strings.Contains(err.Error(), "places for a candidate") || !strings.Contains(err.Error(), "late") {
			t.Fatalf("err = %v, want the lock named and the wait for a place", err)
		}
		if n := len(client.arrived); n != 0 {
			t.Fatalf("a request whose context ended while it waited was sent: %s", <-client.arrived)
		}

		wg.Go(func() { _, _, _ = heldLock(client, "waiting").Get(t.Context()) })
		synctest.Wait()
		wg.Go(func() {
			if err := leader.Update(WithLeaderPriority(t.Context()), record("leader", "", 0)); err != nil {
				t.Errorf("renewal: %v", err)
			}
		})
		synctest.Wait()
		client.through <- struct{}{}
		synctest.Wait()
		first := <-client.arrived
		close(client.through)
		wg.Wait()
		if first != "update leader" {
			t.Fatalf("the first place given back went to %q, want the leader's renewal", first)
		}
		if n := gate.Clients(); n != 0 {
			t.Fatalf("%d clients keep a gate with nothing in flight", n)
		}
	})
}
