package k8sresourcelock

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"

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

// Tests often share one client-go fake clientset, and its typed client, among
// electors, each in a synctest bubble of its own; t.Parallel runs those
// bubbles at once. A request of one bubble must then never be woken by a
// request of another: the runtime ends the whole test process when a
// goroutine touches a channel of a bubble it is not in. The fake has no
// connection to spare, so its requests are not gated. The test runs the
// bubbles in a child process, which such a fault kills.
func TestLocksInSeveralSynctestBubblesMayShareAStockFakeClient(t *testing.T) {
	if os.Getenv("GATE_BUBBLES_CHILD") == "" {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GATE_BUBBLES_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("locks in two bubbles sharing one fake client: %v\n%s", err, firstLines(string(out), 4))
		}
		return
	}
	client := fake.NewClientset().CoordinationV1()
	// Outside any bubble, requests through the same client take every
	// place a candidate may take, and give them back once let go.
	var leaves []func()
	for i := range gate.CandidatesInFlight {
		leave, err := gate.Enter(context.Background(), client)
		if err != nil {
			t.Fatalf("request %d outside the bubble: %v", i+1, err)
		}
		leaves = append(leaves, leave)
	}
	let := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		<-let
		for _, leave := range leaves {
			leave()
		}
	})
	synctest.Test(t, func(t *testing.T) {
		lock := &LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "inside"}, Client: client}
		got := make(chan error, 1)
		go func() {
			_, _, err := lock.Get(t.Context())
			got <- err
		}()
		synctest.Wait()
		close(let)
		wg.Wait()
		if err := <-got; !apierrors.IsNotFound(err) {
			t.Errorf("read in the bubble: %v, want not found", err)
		}
	})
}

// firstLines is the start of a child process's output, where a fatal
// error names itself.
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// Locks NewFromKubeconfig builds from one kubeconfig each have a client of
// their own, but client-go gives them one connection: they share one gate,
// so a process that builds a lock per election still sends at most
// RequestsInFlight of their requests at once.
func TestLocksBuiltFromOneKubeconfigShareOnePlaceLimit(t *testing.T) {
	arrived, let := make(chan struct{}, gate.InFlight), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-let:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
	}))
	defer srv.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(let)
	cfg := &rest.Config{Host: srv.URL}
	lock := func(i int) Interface {
		l, err := NewFromKubeconfig(LeasesResourceLock, ns, fmt.Sprint("election-", i), ResourceLockConfig{Identity: "a"}, cfg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for i := range gate.CandidatesInFlight {
		l := lock(i)
		wg.Go(func() { _, _, _ = l.Get(t.Context()) })
	}
	for i := range gate.CandidatesInFlight {
		select {
		case <-arrived:
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d reads reached the API server", i, gate.CandidatesInFlight)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, _, err := lock(gate.CandidatesInFlight).Get(ctx)
	if err == nil || !strings.Contains(err.Error(), "places for a candidate") {
		t.Fatalf("one read more than a candidate's places: err = %v, want it kept waiting for a place", err)
	}
}
