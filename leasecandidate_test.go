package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

const candidateNS = "kube-system"

func newTestCandidate(t *testing.T, cs kubernetes.Interface, name string) (*LeaseCandidate, CacheSyncWaiter) {
	t.Helper()
	c, sync, err := NewCandidate(cs, candidateNS, name, "kube-controller-manager", "1.37.2", "1.36.0", coordinationv1.OldestEmulationVersion)
	if err != nil {
		t.Fatalf("NewCandidate: %v", err)
	}
	return c, sync
}

func getCandidate(t *testing.T, cs kubernetes.Interface, name string) *coordinationv1beta1.LeaseCandidate {
	t.Helper()
	lc, err := cs.CoordinationV1beta1().LeaseCandidates(candidateNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease candidate %s: %v", name, err)
	}
	return lc
}

// TestLeaseCandidateLifecycle: Run creates the LeaseCandidate with what
// NewCandidate was given, answers each ping of the control plane by
// renewing it, renews it on its own every CandidateRenewInterval, and
// creates it again when it is deleted.
func TestLeaseCandidateLifecycle(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		c, sync := newTestCandidate(t, cs, "kcm-1")
		if got := sync.WaitForCacheSync(ctx.Done()); len(got) != 0 {
			t.Fatalf("WaitForCacheSync before Run = %v, want an empty map at once (as an unstarted informer factory)", got)
		}
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		synctest.Wait()
		key := reflect.TypeOf(&coordinationv1beta1.LeaseCandidate{})
		if got := sync.WaitForCacheSync(ctx.Done()); !reflect.DeepEqual(got, map[reflect.Type]bool{key: true}) {
			t.Fatalf("WaitForCacheSync after Run = %v, want the LeaseCandidate type synced", got)
		}

		lc := getCandidate(t, cs, "kcm-1")
		want := coordinationv1beta1.LeaseCandidateSpec{
			LeaseName: "kube-controller-manager", BinaryVersion: "1.37.2", EmulationVersion: "1.36.0",
			Strategy: coordinationv1.OldestEmulationVersion,
		}
		got := lc.Spec
		got.RenewTime, got.PingTime = nil, nil
		if !reflect.DeepEqual(got, want) || lc.Spec.RenewTime == nil {
			t.Fatalf("created spec %+v; want %+v with a renew time", lc.Spec, want)
		}

		// The control plane pings; the candidate answers.
		time.Sleep(time.Minute)
		ping := metav1.NewMicroTime(time.Now())
		lc.Spec.PingTime = &ping
		if _, err := cs.CoordinationV1beta1().LeaseCandidates(candidateNS).Update(ctx, lc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if lc = getCandidate(t, cs, "kcm-1"); lc.Spec.RenewTime.Before(&ping) {
			t.Fatalf("renew time %v is before the ping %v: the ping went unanswered", lc.Spec.RenewTime, ping)
		}

		// Nobody pings: it renews on its own.
		answered := lc.Spec.RenewTime.Time
		time.Sleep(CandidateRenewInterval + time.Second)
		if lc = getCandidate(t, cs, "kcm-1"); !lc.Spec.RenewTime.After(answered) {
			t.Fatalf("not renewed in %v without a ping (renew time %v)", CandidateRenewInterval, lc.Spec.RenewTime)
		}

		// Deleted (the control plane's garbage collection, or a
		// person): created again.
		if err := cs.CoordinationV1beta1().LeaseCandidates(candidateNS).Delete(ctx, "kcm-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		getCandidate(t, cs, "kcm-1")

		cancel()
		receive(t, done, "Run to return")
	})
}

// TestLeaseCandidateNotServed: where the API server does not serve
// LeaseCandidates, Run says so in words that name the fix, retries with a
// growing pause rather than a hot loop, and returns when told to.
func TestLeaseCandidateNotServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		notServed := func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leasecandidates"}, "")
		}
		cs.PrependReactor("get", "leasecandidates", notServed)
		cs.PrependReactor("create", "leasecandidates", notServed)
		var logs logLines
		ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), logs.logger()))
		c, _ := newTestCandidate(t, cs, "kcm-1")
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()

		time.Sleep(10 * time.Minute)
		creates := count(cs, "create", "leasecandidates")
		if creates < 2 || creates > 40 {
			t.Fatalf("%d creates in 10 minutes; want a few retries with a growing pause", creates)
		}
		if n := logs.count("--runtime-config=coordination.k8s.io/v1beta1=true"); n != creates {
			t.Fatalf("%d of %d failures said what to switch on; logs: %v", n, creates, logs.lines)
		}
		cancel()
		receive(t, done, "Run to return")
	})
}

// TestLeaseCandidateNotServedError: the error names the fix and wraps
// ErrLeaseCandidateNotServed.
func TestLeaseCandidateNotServedError(t *testing.T) {
	cs := fakekube.New()
	cs.PrependReactor("create", "leasecandidates", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leasecandidates"}, "")
	})
	c, _ := newTestCandidate(t, cs, "kcm-1")
	_, err := c.ensure(t.Context())
	if !errors.Is(err, ErrLeaseCandidateNotServed) || !strings.Contains(err.Error(), "CoordinatedLeaderElection feature gate") {
		t.Fatalf("ensure on a server without LeaseCandidates: %v; want ErrLeaseCandidateNotServed naming the feature gate", err)
	}
}

// TestLeaseCandidateRenewalConflict: a renewal that loses a race with the
// control plane's ping reads the object again and still renews it.
func TestLeaseCandidateRenewalConflict(t *testing.T) {
	cs := fakekube.New()
	c, _ := newTestCandidate(t, cs, "kcm-1")
	created, err := c.ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ping := metav1.NewMicroTime(time.Now().Add(time.Second))
	newer := created.DeepCopy()
	newer.Spec.PingTime = &ping
	if _, err := cs.CoordinationV1beta1().LeaseCandidates(candidateNS).Update(t.Context(), newer, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	renewed, err := c.renew(t.Context(), created) // over the stale copy
	if err != nil {
		t.Fatalf("renew over a stale copy: %v", err)
	}
	if renewed.Spec.PingTime == nil || !renewed.Spec.PingTime.Equal(&ping) {
		t.Fatalf("renewal wrote the ping away: %+v", renewed.Spec)
	}
}

func TestNewCandidateRejectsBadInput(t *testing.T) {
	cs := fakekube.New()
	oldest := coordinationv1.OldestEmulationVersion
	cases := []struct {
		name                 string
		clientset            kubernetes.Interface
		ns, candidate, lease string
		binary, emulation    string
		strategy             coordinationv1.CoordinatedLeaseStrategy
		want                 string
	}{
		{"nil clientset", nil, "ns", "c", "l", "1.37.0", "1.37.0", oldest, "clientset must not be nil"},
		{"typed nil clientset", (*fakekube.Clientset)(nil), "ns", "c", "l", "1.37.0", "1.37.0", oldest, "clientset must not be nil"},
		{"no namespace", cs, "", "c", "l", "1.37.0", "1.37.0", oldest, `candidateNamespace "" is not a valid namespace`},
		{"bad name", cs, "ns", "c/1", "l", "1.37.0", "1.37.0", oldest, `candidateName "c/1" is not a valid LeaseCandidate name`},
		{"no lease", cs, "ns", "c", "", "1.37.0", "1.37.0", oldest, `targetLease "" is not a valid Lease name`},
		{"no binary version", cs, "ns", "c", "l", "", "1.37.0", oldest, `binaryVersion "" must be a semantic version`},
		{"bad emulation version", cs, "ns", "c", "l", "1.37.0", "v1.x", oldest, `emulationVersion "v1.x" must be a semantic version`},
		{"binary older than emulation", cs, "ns", "c", "l", "1.36.0", "1.37.0", oldest, `binaryVersion "1.36.0" must not be older than emulationVersion "1.37.0"`},
		{"no strategy", cs, "ns", "c", "l", "1.37.0", "1.37.0", "", "strategy must be set"},
		{"oldest emulation version without one", cs, "ns", "c", "l", "1.37.0", "", oldest, `strategy "OldestEmulationVersion" needs an emulationVersion`},
	}
	for _, tc := range cases {
		c, sync, err := NewCandidate(tc.clientset, tc.ns, tc.candidate, tc.lease, tc.binary, tc.emulation, tc.strategy)
		if err == nil || !strings.Contains(err.Error(), tc.want) || c != nil || sync != nil {
			t.Errorf("%s: NewCandidate = %v, %v, %v; want an error containing %q", tc.name, c, sync, err, tc.want)
		}
	}
	if _, _, err := NewCandidate(cs, "ns", "c", "l", "1.37.0", "", coordinationv1.CoordinatedLeaseStrategy("example.com/mine")); err != nil {
		t.Errorf("a third-party strategy without an emulation version: %v; the API server accepts it", err)
	}
}

// TestLeaseCandidateEnsure: on a fresh look (Run starting, or its watch
// ending) the object is renewed only if it is due: pinged since its last
// renewal, or last renewed CandidateRenewInterval ago. Otherwise nothing is
// written, so that a watch that ends often costs no writes.
func TestLeaseCandidateEnsure(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) *metav1.MicroTime { m := metav1.NewMicroTime(now.Add(d)); return &m }
	cases := []struct {
		name        string
		renew, ping *metav1.MicroTime
		writes      bool
	}{
		{"fresh", at(-time.Minute), nil, false},
		{"fresh, old ping answered", at(-time.Minute), at(-2 * time.Minute), false},
		{"pinged since", at(-time.Minute), at(-time.Second), true},
		{"overdue", at(-CandidateRenewInterval - time.Second), nil, true},
		{"never renewed", nil, nil, true},
	}
	for _, tc := range cases {
		existing := &coordinationv1beta1.LeaseCandidate{
			ObjectMeta: metav1.ObjectMeta{Namespace: candidateNS, Name: "kcm-1"},
			Spec: coordinationv1beta1.LeaseCandidateSpec{
				LeaseName: "kube-controller-manager", BinaryVersion: "1.37.2", EmulationVersion: "1.36.0",
				Strategy: coordinationv1.OldestEmulationVersion, RenewTime: tc.renew, PingTime: tc.ping,
			},
		}
		cs := fakekube.New(existing)
		c, _ := newTestCandidate(t, cs, "kcm-1")
		if _, err := c.ensure(t.Context()); err != nil {
			t.Fatalf("%s: ensure: %v", tc.name, err)
		}
		if wrote := count(cs, "update", "leasecandidates") > 0; wrote != tc.writes {
			t.Errorf("%s: wrote %v, want %v", tc.name, wrote, tc.writes)
		}
	}
}

// watchReactor is what the tests need of a fake clientset to replace its
// watches; both fakes have it.
type watchReactor interface {
	PrependWatchReactor(resource string, reaction k8stesting.WatchReactionFunc)
}

// TestNewCandidateValidatesAsTheAPIServerDoes: NewCandidate accepts exactly
// what the API server's validation accepts, in each case below.
//
// Found by an adversarial review of the first version, which it failed:
// NewCandidate says its arguments are "checked as the API server checks them".
// They are not (kubernetes v1.37 pkg/apis/coordination/validation):
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
func TestNewCandidateValidatesAsTheAPIServerDoes(t *testing.T) {
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

// TestLeaseCandidateAnswersAPingFromAClockAheadOnce: a ping from a control
// plane whose clock is ahead of ours is answered with a few renewals, not a
// hot loop.
//
// Found by an adversarial review of the first version, which it failed: the
// control plane pings with its own clock (pingTime = its now) and waits for
// renewTime >= pingTime. If our clock is behind by even a little, our renewal
// writes a renewTime before the ping, due() still sees the ping after the
// renewal, and the watch event of our own write makes us renew again at once:
// a hot loop of writes for as long as the skew lasts (every ping, at least
// every election), and the ping is never acknowledged as the control plane
// counts acknowledgements. Writing renewTime = max(now, pingTime) would answer
// it with one write.
func TestLeaseCandidateAnswersAPingFromAClockAheadOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
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
}

// TestLeaseCandidatePausesWhenItsWatchEndsAtOnce: a candidate whose watches
// end as soon as they start pauses before it reads and watches again.
//
// Found by an adversarial review of the first version, which it failed: a
// watch that ends at once (a proxy or load balancer that cuts watches, an API
// server shutting down) makes follow return nil, and Run, which resets its
// pause whenever ensure succeeds and only pauses after an error, reads and
// watches again at once: a hot loop of GETs and WATCHes with no pause at all.
func TestLeaseCandidatePausesWhenItsWatchEndsAtOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
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
}

// TestLeaseCandidatePauseGrowsWhileItsWatchFails: while the watch keeps
// failing, the pause between attempts grows, as Run's doc promises.
//
// Found by an adversarial review of the first version, which it failed: Run's
// doc says failures are "retried with a growing pause". When the watch is what
// fails, ensure (a GET) succeeds first and resets the pause to 500ms, so the
// pause never grows: a GET, a WATCH and an error log line every 500ms,
// forever.
func TestLeaseCandidatePauseGrowsWhileItsWatchFails(t *testing.T) {
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

// TestLeaseCandidateBoundsRetriesOfAConflictingRenewal: a renewal that keeps
// conflicting is retried a bounded number of times with pauses, not at once
// forever.
//
// Found by an adversarial review of the first version, which it failed: renew
// retries a Conflict at once, forever, with no pause and no bound: a server
// (or admission webhook) that keeps answering 409 gets a hot loop of GET+PUT.
func TestLeaseCandidateBoundsRetriesOfAConflictingRenewal(t *testing.T) {
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
