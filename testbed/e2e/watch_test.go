package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
)

// TestWatchedReleaseIsTakenAtOnce: a follower that watches takes a released
// lock within one round trip of the release, on every lock kind.
func TestWatchedReleaseIsTakenAtOnce(t *testing.T) {
	for _, kind := range []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock, rl.EndpointsResourceLock, rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock} {
		t.Run(kind, func(t *testing.T) {
			e := newElection(t)
			a := e.start("a", memberOpts{kind: kind, release: true})
			waitFor(t, maxAttemptWait+slack, "a leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "a" })
			e.start("b", memberOpts{kind: kind})
			time.Sleep(2 * retryPeriod)
			stoppedAt := time.Now()
			a.stop()
			waitFor(t, slack, "b takes the released lock", func() bool { return strings.Join(e.rec.Leaders(), ",") == "b" })
			addFigure("watched release taken after ("+kind+")", e.rec.StartedAfter(stoppedAt)[0].Start.Sub(stoppedAt))
			e.rec.assertSafe(t, nil, false)
		})
	}
}

// TestWatchFaults breaks a follower's watch while the leader gives the lock
// up: a connection cut mid-stream, and one that black-holes every byte. The
// follower polls while it cannot watch, watches again once it can, and
// never leads beside another.
func TestWatchFaults(t *testing.T) {
	for _, fault := range []string{"cut", "blackhole"} {
		t.Run(fault, func(t *testing.T) {
			e := newElection(t)
			a := e.start("a", memberOpts{kind: rl.LeasesResourceLock, release: true})
			waitFor(t, maxAttemptWait+slack, "a leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "a" })
			b := e.start("b", memberOpts{kind: rl.LeasesResourceLock})
			time.Sleep(2 * retryPeriod)
			if fault == "cut" {
				b.proxy.Cut()
			} else if err := b.proxy.BlackHole(); err != nil {
				t.Fatal(err)
			}
			// While b is blind, a renews for longer than a lease: b must not
			// take the lock for want of events.
			time.Sleep(2 * leaseDuration)
			a.stop()
			time.Sleep(retryPeriod)
			healedAt := time.Now()
			if err := b.proxy.Heal(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, renewDeadline+maxAttemptWait+slack, "b takes the released lock after healing", func() bool {
				return strings.Join(e.rec.Leaders(), ",") == "b"
			})
			addFigure("watch "+fault+": lock taken after heal", e.rec.StartedAfter(healedAt)[0].Start.Sub(healedAt))
			e.rec.assertSafe(t, nil, false)
		})
	}
}

// TestRBACWithoutWatch: a member whose Role grants get, create and update on
// its Lease but not watch (as Roles written for client-go's elector do)
// cannot watch; it polls instead, and still takes a released lock within a
// jittered RetryPeriod.
func TestRBACWithoutWatch(t *testing.T) {
	config, err := cp.UnprivilegedConfig()
	if err != nil {
		t.Skipf("needs an embedded control plane: %v", err)
	}
	e := newElection(t)
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "leader-election", Namespace: e.ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{e.name}, Verbs: []string{"get", "update"}},
		},
	}
	if _, err := e.admin.RbacV1().Roles(e.ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "leader-election", Namespace: e.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: controlplane.UnprivilegedUser}},
	}
	if _, err := e.admin.RbacV1().RoleBindings(e.ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := e.start("a", memberOpts{kind: rl.LeasesResourceLock, release: true})
	waitFor(t, maxAttemptWait+slack, "a leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "a" })
	e.start("limited", memberOpts{kind: rl.LeasesResourceLock, config: config})
	time.Sleep(3 * retryPeriod)
	stoppedAt := time.Now()
	a.stop()
	waitFor(t, maxAttemptWait+slack, "the member without watch takes the released lock", func() bool {
		return strings.Join(e.rec.Leaders(), ",") == "limited"
	})
	addFigure("release taken by a poller (RBAC without watch)", e.rec.StartedAfter(stoppedAt)[0].Start.Sub(stoppedAt))
	e.rec.assertSafe(t, nil, false)
}

// leaseWatches counts the Lease watches a client has the API server serve,
// namespace-wide (a shared watch's) and of one name (a lock watching alone),
// and can end the open namespace-wide ones early, as a cut connection does.
type leaseWatches struct {
	mu            sync.Mutex
	shared, alone int
	open          map[*cuttableBody]bool
}

func (c *leaseWatches) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		q := req.URL.Query()
		if q.Get("watch") != "true" || !strings.HasSuffix(req.URL.Path, "/leases") {
			return rt.RoundTrip(req)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if q.Get("fieldSelector") != "" {
			c.alone++
			return resp, nil
		}
		c.shared++
		body := &cuttableBody{ReadCloser: resp.Body, owner: c, lines: bufio.NewReader(resp.Body)}
		c.open[body] = true
		resp.Body = body
		return resp, nil
	})
}

// counts returns the namespace-wide watches served, those open now, and the
// watches of one name served.
func (c *leaseWatches) counts() (shared, open, alone int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shared, len(c.open), c.alone
}

// cut ends every open namespace-wide watch.
func (c *leaseWatches) cut() int {
	c.mu.Lock()
	bodies := make([]*cuttableBody, 0, len(c.open))
	for b := range c.open {
		bodies = append(bodies, b)
	}
	c.mu.Unlock()
	for _, b := range bodies {
		b.cut()
	}
	return len(bodies)
}

// cuttableBody is a namespace-wide watch's response body that reads as
// ended once cut. It drops bookmarks: a server need not send them, and one
// that sends none before a watch ends early leaves the watcher to resume
// from the last event it got.
type cuttableBody struct {
	io.ReadCloser
	owner   *leaseWatches
	lines   *bufio.Reader
	pending []byte
	once    sync.Once
	mu      sync.Mutex
	isCut   bool
}

func (b *cuttableBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		line, err := b.lines.ReadBytes('\n')
		if b.wasCut() {
			return 0, io.EOF
		}
		if !bytes.Contains(line, []byte(`"type":"BOOKMARK"`)) {
			b.pending = line
		}
		if err != nil && len(b.pending) == 0 {
			return 0, err
		}
		if err != nil {
			break
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

func (b *cuttableBody) wasCut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.isCut
}

func (b *cuttableBody) cut() {
	b.mu.Lock()
	b.isCut = true
	b.mu.Unlock()
	_ = b.Close()
}

func (b *cuttableBody) Close() error {
	var err error
	b.once.Do(func() {
		b.owner.mu.Lock()
		delete(b.owner.open, b)
		b.owner.mu.Unlock()
		err = b.ReadCloser.Close()
	})
	return err
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestThousandLocksShareOneWatchAfterEarlyEnds: a thousand Lease locks of one
// process, on one client, are served by one namespace watch, and still are
// after that watch ends early: the first one (which, started without a
// resourceVersion, would list the Leases in key order, each at its own
// version) and a later one. No lock ever falls back to a watch of its own.
func TestThousandLocksShareOneWatchAfterEarlyEnds(t *testing.T) {
	const n = 1000
	e := newElection(t)
	ctx := context.Background()
	leaseName := func(i int) string { return fmt.Sprintf("lock-%04d", i) }
	// The Leases, and the first renewed twice since the last was written:
	// in key order their versions do not grow.
	parallel(t, n, func(i int) error {
		holder := "h"
		_, err := e.admin.CoordinationV1().Leases(e.ns).Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: leaseName(i)}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{})
		return err
	})
	renew := func(i int, holder string) {
		t.Helper()
		leases := e.admin.CoordinationV1().Leases(e.ns)
		l, err := leases.Get(ctx, leaseName(i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = &holder
		if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	renew(0, "h1")
	renew(0, "h2")

	counter := &leaseWatches{open: map[*cuttableBody]bool{}}
	config := cp.Config()
	config.QPS = -1
	// JSON, one event a line, so that the counter can drop bookmarks.
	config.ContentType, config.AcceptContentTypes = "application/json", "application/json"
	config.Wrap(counter.wrap)
	client := kubernetes.NewForConfigOrDie(config)
	newLock := func(i int) rl.Interface {
		lock, err := rl.New(rl.LeasesResourceLock, e.ns, leaseName(i), client.CoreV1(), client.CoordinationV1(), rl.ResourceLockConfig{Identity: "w"})
		if err != nil {
			t.Fatal(err)
		}
		return lock
	}
	locks := make([]rl.Interface, n)
	watches := make([]watch.Interface, n)
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range watches {
			if w != nil {
				w.Stop()
			}
		}
	})
	watchAll := func() {
		t.Helper()
		parallel(t, n, func(i int) error {
			mu.Lock()
			old := watches[i]
			mu.Unlock()
			if old != nil {
				old.Stop()
			}
			if i == n-1 {
				// The last in key order watches without a read: its first
				// event is its state, once the shared watch has it.
			} else if _, _, err := locks[i].Get(ctx); err != nil {
				return err
			}
			w, err := locks[i].(rl.Watcher).Watch(ctx)
			mu.Lock()
			watches[i] = w
			mu.Unlock()
			return err
		})
	}
	for i := range locks {
		locks[i] = newLock(i)
	}
	watchAll()

	// awaitHolder reads lock i's watch until its Lease names holder. A
	// watch that ends (the hub tells its locks to read again after two
	// early ends in a row, or when its resume point expired) is replaced
	// by a new one after a read, as an elector does.
	awaitHolder := func(i int, holder string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev, ok := <-watches[i].ResultChan():
				if !ok || ev.Type == watch.Error {
					t.Logf("lock %d: its watch ended (%v), it reads and watches again", i, ev.Object)
					watches[i].Stop()
					rec, _, err := locks[i].Get(ctx)
					if err != nil {
						t.Fatal(err)
					}
					w, err := locks[i].(rl.Watcher).Watch(ctx)
					if err != nil {
						t.Fatal(err)
					}
					mu.Lock()
					watches[i] = w
					mu.Unlock()
					if rec.HolderIdentity == holder {
						return // read, rather than watched
					}
					continue
				}
				if l, isLease := ev.Object.(*coordinationv1.Lease); isLease && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == holder {
					return
				}
			case <-deadline:
				t.Fatalf("holder %q did not reach lock %d's watch within 10s", holder, i)
			}
		}
	}
	awaitHolder(n-1, "h")
	for _, end := range []string{"first", "later"} {
		if cut := counter.cut(); cut != 1 {
			t.Fatalf("%d namespace watches open before the %s early end, want 1", cut, end)
		}
		holder := "after-" + end
		for _, i := range []int{0, n / 2, n - 1} {
			renew(i, holder)
			awaitHolder(i, holder)
		}
		shared, open, alone := counter.counts()
		t.Logf("after the %s early end: %d namespace watches served, %d open, %d watches of one name", end, shared, open, alone)
		if alone != 0 || open != 1 || shared > 6 {
			t.Fatalf("after the %s early end of the shared watch, %d locks watch alone and %d namespace watches are open (%d served); want 0, 1 and at most 6",
				end, alone, open, shared)
		}
	}
}

// parallel runs f(0) … f(n-1) on a few goroutines and fails t on the first
// error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- fmt.Errorf("%d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
