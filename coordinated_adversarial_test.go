package k8sleaderelection

// Adversarial tests of coordinated leader election and LeaseCandidate: each
// failed on the first version of that code. Their comments tell the fault
// each one found; the code now does what they ask.

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	coordinationv1beta1 "k8s.io/api/coordination/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// watchReactor is what the tests need of a fake clientset to replace its
// watches; both fakes have it.
type watchReactor interface {
	PrependWatchReactor(resource string, reaction k8stesting.WatchReactionFunc)
}

// TestAdvCoordinatedRejoinAfterOutageLeadsAgain: a coordinated leader run
// with RunAndRejoin is cut off from the API server for longer than its
// lease. It steps down (correctly). The control plane, when the cut-off ends,
// finds the Lease expired, runs an election, and picks the same candidate
// again: kube-apiserver's leaderelection_controller then writes nothing
// (electee == holder: not noHolderIdentity, not expiredAndNewHolder, not
// differentHolder; the reflect.DeepEqual(existing, orig) branch). So the
// Lease keeps naming "a", expired, forever. The rejoined elector sees the
// very state it wrote last (same resourceVersion, so its observation keeps
// the old "since") and decideCoordinated says "names us, expired, not
// leading: wait". Nobody ever leads again, although the control plane has
// named a, and a's write would be conditional on the resourceVersion it read
// (so a renewal could never land over a reassignment).
func TestAdvCoordinatedRejoinAfterOutageLeadsAgain(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fk.new()
				var cutOff atomic.Bool
				fail := func(k8stesting.Action) (bool, runtime.Object, error) {
					if cutOff.Load() {
						return true, nil, apierrors.NewServiceUnavailable("cut off")
					}
					return false, nil, nil
				}
				cs.PrependReactor("get", "leases", fail)
				cs.PrependReactor("update", "leases", fail)
				cp := controlPlane{t, cs}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()

				lec := coordinatedConfig(t, cs, "a")
				starts := make(chan context.Context, 8)
				lec.Callbacks.OnStartedLeading = func(ctx context.Context) { starts <- ctx; <-ctx.Done() }
				lec.Callbacks.OnStoppedLeading = func() {}
				le := newTestElector(t, lec, nil)
				done := make(chan struct{})
				go func() { defer close(done); le.RunAndRejoin(ctx) }()

				cp.elect("a")
				first := receive(t, starts, "a to lead once the control plane names it")
				time.Sleep(3 * retryPeriod)

				cutOff.Store(true)
				time.Sleep(leaseDuration + 5*time.Second)
				cutOff.Store(false)
				select {
				case <-first.Done():
				default:
					t.Fatal("a still leads after being cut off for longer than its lease")
				}
				// The control plane re-elects a: it writes nothing.
				if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "a" {
					t.Fatalf("record after the cut-off: %+v; want it still naming a", rec)
				}

				select {
				case <-starts:
				case <-time.After(5 * time.Minute):
					rec := readRecord(t, cs, rl.LeasesResourceLock)
					t.Fatalf("no leader for 5 minutes after the cut-off ended: the Lease names a (%+v), which the control plane "+
						"keeps as its pick and never rewrites, but a (RunAndRejoin) waits because the Lease it sees unchanged has expired; deadlock",
						rec)
				}
				cancel()
				receive(t, done, "RunAndRejoin to return")
			})
		})
	}
}

// TestAdvNewCandidateAgreesWithTheAPIServer: NewCandidate says its
// arguments are "checked as the API server checks them". They are not
// (kubernetes v1.37 pkg/apis/coordination/validation):
//   - the name is checked with IsConfigMapKey (ValidLeaseCandidateName), so
//     "host_3f2a..." is valid; it is the identity kube-controller-manager
//     and kube-scheduler use (hostname + "_" + uuid) and pass to
//     NewCandidate, but NewCandidate rejects it;
//   - versions are parsed with blang/semver's strict Parse: "v1.37.0" is
//     rejected by the server, accepted here;
//   - an emulationVersion of 0.0.0 with OldestEmulationVersion counts as
//     missing on the server;
//   - a one-part strategy other than OldestEmulationVersion is NotSupported,
//     and a strategy with more than one "/" is not a qualified name;
//   - a namespace must be a DNS label, not a subdomain.
func TestAdvNewCandidateAgreesWithTheAPIServer(t *testing.T) {
	cs := fakekube.New()
	oldest := coordinationv1.OldestEmulationVersion
	cases := []struct {
		name              string
		ns, candidate     string
		binary, emulation string
		strategy          coordinationv1.CoordinatedLeaseStrategy
		serverAccepts     bool
	}{
		{"kube-controller-manager identity (hostname_uuid)", "kube-system", "node-1_3f2a9c1e-5b7d-4c1a-9e2f-0a1b2c3d4e5f", "1.37.0", "1.36.0", oldest, true},
		{"upper-case name", "kube-system", "Node-1", "1.37.0", "1.36.0", oldest, true},
		{"binary version with a v", "kube-system", "c", "v1.37.0", "1.36.0", oldest, false},
		{"emulation version with a v", "kube-system", "c", "1.37.0", "v1.36.0", oldest, false},
		{"emulation version 0.0.0 with OldestEmulationVersion", "kube-system", "c", "1.37.0", "0.0.0", oldest, false},
		{"unknown one-part strategy", "kube-system", "c", "1.37.0", "1.36.0", "NewestBinaryVersion", false},
		{"strategy with two slashes", "kube-system", "c", "1.37.0", "", "example.com/a/b", false},
		{"dotted namespace", "kube.system", "c", "1.37.0", "1.36.0", oldest, false},
	}
	var wrong []string
	for _, tc := range cases {
		_, _, err := NewCandidate(cs, tc.ns, tc.candidate, "kube-controller-manager", tc.binary, tc.emulation, tc.strategy)
		if accepted := err == nil; accepted != tc.serverAccepts {
			wrong = append(wrong, fmt.Sprintf("%s: NewCandidate error %v, but the API server %s it",
				tc.name, err, map[bool]string{true: "accepts", false: "rejects"}[tc.serverAccepts]))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("NewCandidate disagrees with the API server's validation in %d of %d cases:\n  %s",
			len(wrong), len(cases), strings.Join(wrong, "\n  "))
	}
}

// TestAdvLeaseCandidateSkewedPing: the control plane pings with its own
// clock (pingTime = its now) and waits for renewTime >= pingTime. If our
// clock is behind by even a little, our renewal writes a renewTime before the
// ping, due() still sees the ping after the renewal, and the watch event of
// our own write makes us renew again at once: a hot loop of writes for as
// long as the skew lasts (every ping, at least every election), and the
// ping is never acknowledged as the control plane counts acknowledgements.
// Writing renewTime = max(now, pingTime) would answer it with one write.
func TestAdvLeaseCandidateSkewedPing(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fk.new()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var counting atomic.Bool
				var updates atomic.Int32
				boundAt := make(chan time.Time, 1)
				cs.PrependReactor("update", "leasecandidates", func(k8stesting.Action) (bool, runtime.Object, error) {
					if counting.Load() && updates.Add(1) == 200 {
						boundAt <- time.Now()
						cancel() // bound the hot loop; virtual time cannot pass while it runs
					}
					return false, nil, nil
				})
				c, _ := newTestCandidate(t, cs, "kcm-1")
				done := make(chan struct{})
				go func() { defer close(done); c.Run(ctx) }()
				synctest.Wait()

				lc := getCandidate(t, cs, "kcm-1")
				ping := metav1.NewMicroTime(time.Now().Add(2 * time.Second)) // the control plane's clock is 2s ahead
				lc.Spec.PingTime = &ping
				if _, err := cs.CoordinationV1beta1().LeaseCandidates(candidateNS).Update(context.Background(), lc, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				counting.Store(true)
				start := time.Now()
				time.Sleep(10 * time.Second)
				n := updates.Load()
				if n > 3 {
					took := "-"
					select {
					case at := <-boundAt:
						took = at.Sub(start).String()
					default:
					}
					last := getCandidate(t, cs, "kcm-1").Spec.RenewTime
					t.Fatalf("answered one ping from a clock 2s ahead with %d renewals, the 200th %s after the ping (a hot loop, cut off by the test); "+
						"the last renewal (%v) is before the ping (%v), so the control plane never saw it answered", n, took, last, ping)
				}
				cancel()
				receive(t, done, "Run to return")
			})
		})
	}
}

// TestAdvLeaseCandidateClosedWatchHotLoops: a watch that ends at once (a
// proxy or load balancer that cuts watches, an API server shutting down)
// makes follow return nil, and Run, which resets its pause whenever ensure
// succeeds and only pauses after an error, reads and watches again at once:
// a hot loop of GETs and WATCHes with no pause at all.
func TestAdvLeaseCandidateClosedWatchHotLoops(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fk.new()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var gets atomic.Int32
				cs.PrependReactor("get", "leasecandidates", func(k8stesting.Action) (bool, runtime.Object, error) {
					if gets.Add(1) >= 500 {
						cancel() // bound the hot loop
					}
					return false, nil, nil
				})
				cs.(watchReactor).PrependWatchReactor("leasecandidates", func(k8stesting.Action) (bool, watch.Interface, error) {
					w := watch.NewFake()
					w.Stop()
					return true, w, nil
				})
				c, _ := newTestCandidate(t, cs, "kcm-1")
				done := make(chan struct{})
				start := time.Now()
				go func() { defer close(done); c.Run(ctx) }()
				time.Sleep(time.Minute)
				if n := gets.Load(); n > 30 {
					t.Fatalf("%d GETs (and as many WATCHes) in %v of virtual time against a server whose watches end at once: a hot loop (cut off by the test)",
						n, time.Since(start))
				}
				cancel()
				receive(t, done, "Run to return")
			})
		})
	}
}

// TestAdvLeaseCandidateFailingWatchBackoff: Run's doc says failures are
// "retried with a growing pause". When the watch is what fails, ensure (a
// GET) succeeds first and resets the pause to 500ms, so the pause never
// grows: a GET, a WATCH and an error log line every 500ms, forever.
func TestAdvLeaseCandidateFailingWatchBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var watches atomic.Int32
		cs.PrependWatchReactor("leasecandidates", func(k8stesting.Action) (bool, watch.Interface, error) {
			watches.Add(1)
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leasecandidates"}, "", fmt.Errorf("no watch for you"))
		})
		ctx, cancel := context.WithCancel(t.Context())
		c, _ := newTestCandidate(t, cs, "kcm-1")
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		time.Sleep(10 * time.Minute)
		if n := watches.Load(); n > 40 {
			t.Fatalf("%d failed watches in 10 minutes: the pause does not grow when the watch fails (want a few dozen at most, as for a failing create)", n)
		}
		cancel()
		receive(t, done, "Run to return")
	})
}

// TestAdvLeaseCandidateEndlessConflict: renew retries a Conflict at once,
// forever, with no pause and no bound: a server (or admission webhook) that
// keeps answering 409 gets a hot loop of GET+PUT.
func TestAdvLeaseCandidateEndlessConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var updates, cancelledAt atomic.Int32
		cs.PrependReactor("update", "leasecandidates", func(k8stesting.Action) (bool, runtime.Object, error) {
			n := updates.Add(1)
			if n == 100 {
				cancelledAt.Store(n)
				cancel() // Run is told to stop
			}
			if n > 500 {
				// Bound the hot loop: renew does not look at its context,
				// so cancelling it does not end the loop; let it through.
				return false, nil, nil
			}
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leasecandidates"}, "kcm-1", fmt.Errorf("busy"))
		})
		c, _ := newTestCandidate(t, cs, "kcm-1")
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		synctest.Wait()
		time.Sleep(time.Second)
		lc := getCandidate(t, cs, "kcm-1")
		ping := metav1.NewMicroTime(time.Now())
		lc.Spec.PingTime = &ping
		// The control plane's ping, written past the reactors.
		if err := cs.Tracker().Update(coordinationv1beta1.SchemeGroupVersion.WithResource("leasecandidates"), lc, candidateNS); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(time.Minute)
		n := updates.Load()
		cancel()
		receive(t, done, "Run to return")
		if n > 40 {
			after := 0
			if at := cancelledAt.Load(); at > 0 {
				after = int(n - at)
			}
			t.Fatalf("%d renewal attempts in %v of virtual time while every update conflicts: renew retries at once, without a pause or a bound, "+
				"and %d of them came after Run's context was cancelled (the test let the 501st through; otherwise Run never returns)",
				n, time.Since(start), after)
		}
	})
}
