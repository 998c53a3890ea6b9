package k8sleaderelection

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestDecideCoordinated is the rule of a coordinated election: the control
// plane writes the holder, and a candidate only follows.
func TestDecideCoordinated(t *testing.T) {
	c := func(s situation) situation { s.coordinated = true; return s }
	cases := []struct {
		name string
		s    situation
		want verdict
	}{
		{"absent lease: wait for the control plane to create it", c(situation{}), verdictWait},
		{"free lease: wait", c(situation{exists: true, free: true}), verdictWait},
		{"another holder, expired: wait", c(situation{exists: true, expired: true}), verdictWait},
		{"another holder, running: wait", c(situation{exists: true}), verdictWait},
		{"would outrank: still wait", c(situation{exists: true, outranks: true, mayAsk: true}), verdictWait},
		{"names us: renew, and lead", c(situation{exists: true, ours: true}), verdictRenew},
		{"names us, expired, not leading: renew (the control plane keeps an expired Lease on its pick)", c(situation{exists: true, ours: true, expired: true}), verdictRenew},
		{"leading and names us: renew", c(situation{exists: true, ours: true, leading: true}), verdictRenew},
		{"leading, end of term: stop, then release", c(situation{exists: true, ours: true, leading: true, endOfTerm: true}), verdictHandOver},
		{"holding without leading, end of term: release", c(situation{exists: true, ours: true, endOfTerm: true}), verdictHandOver},
		{"leading, another holder: step down", c(situation{exists: true, leading: true}), verdictStepDown},
		{"leading, lease deleted: step down", c(situation{leading: true}), verdictStepDown},
		{"leading, lease freed: step down", c(situation{exists: true, leading: true, free: true}), verdictStepDown},
	}
	for _, tc := range cases {
		if got := decide(tc.s); got != tc.want {
			t.Errorf("%s: decide(%+v) = %v, want %v", tc.name, tc.s, got, tc.want)
		}
	}
	if (situation{exists: true, coordinated: true}).rankMatters() {
		t.Error("rank matters in a coordinated election; the control plane alone ranks candidates")
	}
}

// controlPlane writes the Lease as kube-apiserver's coordinated election
// does: it creates it naming its pick, and later marks the end of a term
// (preferredHolder) or names a new holder once the lease is free.
type controlPlane struct {
	t  *testing.T
	cs kubernetes.Interface
}

func (cp controlPlane) lease() *coordinationv1.Lease {
	cp.t.Helper()
	lease, err := cp.cs.CoordinationV1().Leases(testNamespace).Get(context.Background(), testLockName, metav1.GetOptions{})
	if err != nil {
		cp.t.Fatalf("control plane: get lease: %v", err)
	}
	return lease
}

// elect names holder in the Lease, creating it if need be, with a fresh
// five-second lease, no acquire time and no preferred holder.
func (cp controlPlane) elect(holder string) {
	cp.t.Helper()
	leases := cp.cs.CoordinationV1().Leases(testNamespace)
	now := metav1.NewMicroTime(time.Now())
	strategy := coordinationv1.OldestEmulationVersion
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       &holder,
		LeaseDurationSeconds: ptr.To[int32](5),
		RenewTime:            &now,
		Strategy:             &strategy,
	}
	lease, err := leases.Get(context.Background(), testLockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// The API server gives every object it creates a UID of its own;
		// client-go's stock fake gives none, so we do.
		meta := metav1.ObjectMeta{Namespace: testNamespace, Name: testLockName, UID: types.UID("lease-" + uniqueName())}
		lease = &coordinationv1.Lease{ObjectMeta: meta, Spec: spec}
		if _, err := leases.Create(context.Background(), lease, metav1.CreateOptions{}); err != nil {
			cp.t.Fatalf("control plane: create lease: %v", err)
		}
		return
	}
	if err != nil {
		cp.t.Fatalf("control plane: get lease: %v", err)
	}
	spec.LeaseTransitions = lease.Spec.LeaseTransitions
	lease.Spec = spec
	if _, err := leases.Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		cp.t.Fatalf("control plane: update lease: %v", err)
	}
}

// prefer marks the end of the holder's term: preferred should hold next.
func (cp controlPlane) prefer(preferred string) {
	cp.t.Helper()
	lease := cp.lease()
	lease.Spec.PreferredHolder = &preferred
	if _, err := cp.cs.CoordinationV1().Leases(testNamespace).Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		cp.t.Fatalf("control plane: mark the end of the term: %v", err)
	}
}

// remove deletes the Lease, as a person with kubectl, the garbage collector
// or a restore from a backup may while a term runs.
func (cp controlPlane) remove() {
	cp.t.Helper()
	if err := cp.cs.CoordinationV1().Leases(testNamespace).Delete(context.Background(), testLockName, metav1.DeleteOptions{}); err != nil {
		cp.t.Fatalf("delete lease: %v", err)
	}
}

func coordinatedConfig(t *testing.T, cs kubernetes.Interface, identity string) LeaderElectionConfig {
	lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, identity, ""))
	lec.Coordinated = true
	return lec
}

// TestCoordinatedCandidatesFollowTheControlPlane: coordinated candidates
// never create or take the Lease themselves, whatever its state; the one the
// control plane names leads; when the control plane prefers another, the
// leader stops its work and only then releases the Lease, so that the next
// holder never leads beside it, and nobody takes the freed Lease but the
// one the control plane names.
func TestCoordinatedCandidatesFollowTheControlPlane(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		var logs logLines
		ctx = klog.NewContext(ctx, logs.logger())

		aConfig, bConfig := coordinatedConfig(t, cs, "a"), coordinatedConfig(t, cs, "b")
		mode.apply(&aConfig)
		mode.apply(&bConfig)
		a := startCandidate(t, ctx, aConfig, f, time.Second)
		b := startCandidate(t, ctx, bConfig, f, 0)

		time.Sleep(3 * leaseDuration)
		if _, err := cs.CoordinationV1().Leases(testNamespace).Get(ctx, testLockName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a coordinated candidate created the Lease (get: %v); only the control plane may", err)
		}
		if n := logs.count("the Lease does not exist"); n != 2 {
			t.Fatalf("%d messages saying the Lease does not exist, want one per candidate", n)
		}

		cp.elect("a")
		a.leading(t)
		time.Sleep(3 * retryPeriod)
		rec := readRecord(t, cs, rl.LeasesResourceLock)
		if rec.HolderIdentity != "a" || rec.AcquireTime.IsZero() || rec.LeaderTransitions != 1 ||
			rec.Strategy != coordinationv1.OldestEmulationVersion || rec.LeaseDurationSeconds != int(leaseDuration/time.Second) {
			t.Fatalf("record after a's renewals: %+v; want a, an acquire time, 1 transition, the control plane's strategy, our lease", rec)
		}
		if b.le.IsLeader() {
			t.Fatal("b leads though the control plane named a")
		}

		// Between two renewals of a polling leader: on the stock
		// fake a renewal that read the Lease just before the mark
		// writes it away unseen (the real control plane marks
		// again on its next pass). A watching leader sees it all
		// the same (TestCoordinatedMarkWrittenAwayStillEndsTheTerm).
		time.Sleep(retryPeriod / 2)
		cp.prefer("b")
		receive(t, a.stopped, "a to stop leading at the end of its term")
		a.finished(t)
		time.Sleep(3 * leaseDuration)
		rec = readRecord(t, cs, rl.LeasesResourceLock)
		if rec.HolderIdentity != "" || rec.Strategy != coordinationv1.OldestEmulationVersion {
			t.Fatalf("record after a's term: %+v; want it released, with the strategy kept", rec)
		}
		if b.le.IsLeader() {
			t.Fatal("b took the freed Lease itself; only the control plane may give it")
		}

		cp.elect("b")
		b.leading(t)
		f.check(t)
		if got := f.history(); len(got) < 3 {
			t.Fatalf("history %v; want a's term, its end, then b's", got)
		}
		cancel()
		b.finished(t)
	})
}

// TestCoordinatedMarkWrittenAwayStillEndsTheTerm: the control plane marks
// the end of our term between the leader's read and its renewal, which a
// clientset that does not check resourceVersions (client-go's stock fake)
// lets write the mark away. The watch showed the mark before our write, so
// the term ends all the same. (An API server refuses that renewal as a
// conflict, and the leader reads the mark.)
func TestCoordinatedMarkWrittenAwayStillEndsTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		tracker := cs.Tracker()
		var markNext atomic.Bool
		var marked atomic.Int32
		cs.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
			if !markNext.CompareAndSwap(true, false) {
				return false, nil, nil
			}
			gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
			obj, err := tracker.Get(gvr, testNamespace, testLockName)
			if err != nil {
				t.Errorf("control plane: get lease: %v", err)
				return false, nil, nil
			}
			lease := obj.(*coordinationv1.Lease)
			lease.Spec.PreferredHolder = ptr.To("b")
			if err := tracker.Update(gvr, lease, testNamespace); err != nil {
				t.Errorf("control plane: mark the end of the term: %v", err)
			}
			marked.Add(1)
			return false, nil, nil
		})
		a := startCandidate(t, ctx, coordinatedConfig(t, cs, "a"), nil, 0)
		cp.elect("a")
		a.leading(t)
		markNext.Store(true)
		receive(t, a.stopped, "a to stop leading after a renewal wrote the mark away")
		if marked.Load() != 1 {
			t.Fatalf("the mark went in %d times, want once", marked.Load())
		}
		a.finished(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
			t.Fatalf("record after a's term: %+v; want it released", rec)
		}
	})
}

// TestCoordinatedEndOfTermWaitsForTheWork: the leader at the end of its term
// keeps the Lease, renewing it and keeping the control plane's preferred
// holder in it, until its work has returned; only then is it released.
func TestCoordinatedEndOfTermWaitsForTheWork(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lec := coordinatedConfig(t, cs, "a")
		lec.StopTimeout = 4 * retryPeriod
		windDown := 3 * retryPeriod
		a := startCandidate(t, ctx, lec, nil, windDown)
		cp.elect("a")
		a.leading(t)
		cp.prefer("b")
		endAt := time.Now()

		time.Sleep(windDown - time.Millisecond)
		rec := readRecord(t, cs, rl.LeasesResourceLock)
		if rec.HolderIdentity != "a" || rec.PreferredHolder != "b" {
			t.Fatalf("record while a's work stops: %+v; want it still a's, preferring b", rec)
		}
		if !rec.RenewTime.After(endAt) {
			t.Fatalf("a did not renew while its work stopped (renewed %v, end of term %v)", rec.RenewTime, endAt)
		}
		a.finished(t)
		if time.Since(endAt) < windDown {
			t.Fatalf("Run returned %v after the end of the term, before the work (%v)", time.Since(endAt), windDown)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
			t.Fatalf("record after a's work returned: %+v; want it released", rec)
		}
	})
}

// TestCoordinatedCandidateRestarts: a candidate that starts and finds the
// Lease naming it (it restarted, or the control plane named it while it was
// down) leads, as client-go's does: its lease runs, by our clock, from the
// moment we see it. Its first write is conditional on what it read, so a
// control plane that gave the Lease away meanwhile wins, and it starts a
// new term (acquire time, one more transition).
func TestCoordinatedCandidateRestarts(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()

		cp.elect("a")
		a := runCandidate(t, ctx, coordinatedConfig(t, cs, "a"), nil)
		a.leading(t)
		cp.elect("c")
		receive(t, a.stopped, "a to step down when the control plane names c")

		c := runCandidate(t, ctx, coordinatedConfig(t, cs, "c"), nil)
		c.leading(t)
		rec := readRecord(t, cs, rl.LeasesResourceLock)
		if rec.HolderIdentity != "c" || rec.LeaderTransitions != 2 || rec.AcquireTime.IsZero() {
			t.Fatalf("record after c's first renewal: %+v; want c, a second transition, an acquire time", rec)
		}
	})
}

// TestCoordinatedLeaderReelectedAfterAnOutageLeadsAgain: a coordinated
// candidate that the control plane names again after an outage longer than its
// lease leads again, although the Lease it finds is unchanged and expired.
//
// Found by an adversarial review of the first version, which it failed: a
// coordinated leader run with RunAndRejoin is cut off from the API server for
// longer than its lease. It steps down (correctly). The control plane, when
// the cut-off ends, finds the Lease expired, runs an election, and picks the
// same candidate again: kube-apiserver's leaderelection_controller then writes
// nothing (electee == holder: not noHolderIdentity, not expiredAndNewHolder,
// not differentHolder; the reflect.DeepEqual(existing, orig) branch). So the
// Lease keeps naming "a", expired, forever. The rejoined elector sees the very
// state it wrote last (same resourceVersion, so its observation keeps the old
// "since") and decideCoordinated says "names us, expired, not leading: wait".
// Nobody ever leads again, although the control plane has named a, and a's
// write would be conditional on the resourceVersion it read (so a renewal
// could never land over a reassignment).
func TestCoordinatedLeaderReelectedAfterAnOutageLeadsAgain(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
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
}

// TestCoordinatedLeaseDeletedMidTerm is what the README and Coordinated's
// doc say of a Lease deleted while a coordinated leader leads: the leader
// cannot hold anything while its work winds down (it never creates the
// Lease), so its work's context is cancelled once it sees the deletion, at
// the latest at its next renewal, RetryPeriod after the last; IsLeader
// turns false, and the control plane's next pick leads without waiting for
// that work to return. The two terms differ in the Lease's UID, so a write
// stamped in the old one is refused by a fence.
func TestCoordinatedLeaseDeletedMidTerm(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		aConfig, bConfig := coordinatedConfig(t, cs, "a"), coordinatedConfig(t, cs, "b")
		mode.apply(&aConfig)
		mode.apply(&bConfig)
		windDown := 3 * retryPeriod
		aStarted, aReturned := make(chan context.Context, 1), make(chan struct{})
		aConfig.Callbacks.OnStartedLeading = func(work context.Context) {
			defer close(aReturned)
			aStarted <- work
			<-work.Done()
			time.Sleep(windDown)
		}
		aConfig.Callbacks.OnStoppedLeading = func() {}
		a := newTestElector(t, aConfig, nil)
		aDone := make(chan struct{})
		go func() { defer close(aDone); a.Run(ctx) }()
		b := runCandidate(t, ctx, bConfig, nil)

		cp.elect("a")
		aWork := receive(t, aStarted, "a to lead once the control plane names it")
		aTerm, ok := TermFromContext(aWork)
		if !ok || aTerm.UID == "" {
			t.Fatalf("a's term %+v (found %v); want one with the Lease's UID", aTerm, ok)
		}
		// Mid-term, just after a renewal: a poll sees the deletion only
		// at the next one.
		time.Sleep(3*retryPeriod + time.Millisecond)
		cp.remove()
		deletedAt := time.Now()

		receive(t, aWork.Done(), "a's work context to be cancelled once its Lease was deleted")
		if took := time.Since(deletedAt); took > retryPeriod {
			t.Fatalf("a's work context was cancelled %v after its Lease was deleted; want at most RetryPeriod (%v)", took, retryPeriod)
		}
		if a.IsLeader() {
			t.Fatal("a reports it leads once its work context was cancelled; the Lease is gone")
		}

		// The control plane creates the Lease for its next pick at once,
		// and nothing of a's holds it off while a's work winds down.
		cp.elect("b")
		bWork := b.leading(t)
		select {
		case <-aReturned:
			t.Fatal("a's work returned before b led; want b to lead while it winds down, as documented")
		default:
		}
		bTerm, ok := TermFromContext(bWork)
		if !ok || bTerm.UID == "" || bTerm.UID == aTerm.UID {
			t.Fatalf("b's term %+v (found %v) after a's %+v; want the UID of the Lease created again, which fences a's writes", bTerm, ok, aTerm)
		}
		receive(t, aReturned, "a's work to return")
		receive(t, aDone, "a's Run to return")
		if !b.le.IsLeader() {
			t.Fatal("b stopped leading when a's work returned")
		}
		cancel()
		b.finished(t)
	})
}

// TestCoordinatedCandidateLeadsWhenTheLeaseAppearsAsItStarts: a coordinated
// candidate whose first read found no Lease, because the control plane
// created it just after that read was answered, still sees the Lease name
// it and leads at once (watching) or at its next poll. It writes nothing
// before it leads, so no conflict tells it of the Lease, and the watch it
// opens after that read may not show it: client-go's stock fake (before
// v0.36) replays nothing to a new watch.
func TestCoordinatedCandidateLeadsWhenTheLeaseAppearsAsItStarts(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cp.elect("a")
		// The candidate's first read is answered as of just before the
		// control plane created the Lease.
		var answered atomic.Bool
		cs.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			if answered.Swap(true) {
				return false, nil, nil
			}
			return true, nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), testLockName)
		})
		lec := coordinatedConfig(t, cs, "a")
		mode.apply(&lec)
		a := runCandidate(t, ctx, lec, nil)
		select {
		case <-a.started:
		case <-time.After(maxAcquireWait + time.Millisecond):
			t.Fatalf("a does not lead %v after it started, though the Lease names %q: the Lease created just after a's first read never reached it",
				maxAcquireWait+time.Millisecond, readRecord(t, cs, rl.LeasesResourceLock).HolderIdentity)
		}
		cancel()
		a.finished(t)
	})
}

// TestCoordinatedEndMarkOfAnEarlierTermEndsNoLaterOne: the control plane's
// mark ends the term it was put on and no other. Here a's work overruns
// StopTimeout after the mark, so a leaves the Lease to expire rather than
// release it; the control plane then gives the expired Lease to b, and
// later back to a, each time naming the holder and clearing the mark but
// leaving the Lease's transitions as they were (kube-apiserver's
// leaderelection_controller does the same). a (RunAndRejoin) must lead the
// new term, not end it at once for the old term's mark.
func TestCoordinatedEndMarkOfAnEarlierTermEndsNoLaterOne(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()

		lec := coordinatedConfig(t, cs, "a")
		lec.StopTimeout = retryPeriod
		starts := make(chan context.Context, 8)
		var terms atomic.Int32
		lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
			starts <- ctx
			<-ctx.Done()
			if terms.Add(1) == 1 {
				time.Sleep(leaseDuration + 4*retryPeriod) // overruns StopTimeout, and the lease
			}
		}
		lec.Callbacks.OnStoppedLeading = func() {}
		le := newTestElector(t, lec, nil)
		done := make(chan struct{})
		go func() { defer close(done); le.RunAndRejoin(ctx) }()

		cp.elect("a")
		first := receive(t, starts, "a to lead once the control plane names it")
		cp.prefer("b")
		select {
		case <-first.Done():
		case <-time.After(patience):
			t.Fatal("a's work not stopped after the control plane preferred b")
		}
		time.Sleep(leaseDuration + retryPeriod)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "a" || rec.PreferredHolder != "b" {
			t.Fatalf("record after a's work overran StopTimeout: %+v; want it left to expire, naming a, preferring b", rec)
		}
		cp.elect("b") // expired: b holds, the mark goes, transitions stay
		time.Sleep(retryPeriod)
		cp.elect("a")               // b is gone: a again, transitions still as they were
		time.Sleep(6 * retryPeriod) // a's old work has returned; a rejoins

		rec := readRecord(t, cs, rl.LeasesResourceLock)
		select {
		case <-starts:
		default:
			t.Fatalf("a did not lead the new term the control plane gave it (record now %+v): the mark of its earlier "+
				"term, with the same transitions, ended the new one", rec)
		}
		if rec.HolderIdentity != "a" || rec.PreferredHolder != "" {
			t.Fatalf("record in a's new term: %+v; want it naming a with no preferred holder", rec)
		}
		cancel()
		receive(t, done, "RunAndRejoin to return")
	})
}
