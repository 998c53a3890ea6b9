package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// world is one case's lock, clock and elector. We are "us" with key
// "stable"; the other candidate is "other" with key "canary".
type world struct {
	t     *testing.T
	kind  string
	cs    clientset
	clock *clocktesting.FakeClock
	le    *LeaderElector
	// asked is the key KeyComparison was last asked about, or notAsked.
	asked string
}

const notAsked = "<not asked>"

// newWorld makes a world; wrap, if given, wraps our lock.
func newWorld(t *testing.T, cs clientset, kind string, outranks bool, wrap ...func(rl.Interface) rl.Interface) *world {
	t.Helper()
	w := &world{t: t, kind: kind, cs: cs, clock: clocktesting.NewFakeClock(t0), asked: notAsked}
	lock := newTestLock(t, cs, kind, "us", "stable")
	for _, f := range wrap {
		lock = f(lock)
	}
	lec := testConfig(lock)
	lec.KeyComparison = func(existing string) bool { w.asked = existing; return outranks }
	w.le = newTestElector(t, lec, w.clock)
	return w
}

func (w *world) attempt(leading bool) (verdict, error) {
	return w.le.tryAcquireOrRenew(context.Background(), leading)
}

// lead makes us the leader, as acquire would.
func (w *world) lead() {
	w.t.Helper()
	v, err := w.attempt(false)
	if err != nil || !v.writes() {
		w.t.Fatalf("acquire: %v, %v", v, err)
	}
	w.le.startLeading(w.clock.Now())
}

// expect makes one attempt and checks its verdict.
func (w *world) expect(leading bool, want verdict) {
	w.t.Helper()
	if got, err := w.attempt(leading); got != want || err != nil {
		w.t.Fatalf("at +%v: attempt = %v, %v; want %v", w.clock.Since(t0), got, err, want)
	}
}

// TestTryAcquireOrRenew drives one attempt per case against every lock kind,
// on both fakes, and checks the verdict, the record it leaves, and whom
// KeyComparison was asked about.
func TestTryAcquireOrRenew(t *testing.T) {
	cases := []struct {
		name     string
		only     func(kind string) bool // nil: every kind
		outranks bool                   // what our KeyComparison answers
		setup    func(w *world)
		leading  bool

		want            verdict
		wantErr         bool
		wantHolder      string
		wantKey         string
		wantTransitions int
		// wantLeaseTransitions, if set, replaces wantTransitions for a Lease
		// lock, whose holder starts a new term when it restarts (package
		// fence): its verdict is then verdictNewTerm.
		wantLeaseTransitions int
		wantAsked            string
	}{
		{
			name: "absent lock is created", want: verdictCreate,
			wantHolder: "us", wantKey: "stable", wantAsked: notAsked,
		},
		{
			name:  "held and running: wait",
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2)) },
			want:  verdictWait, wantHolder: "other", wantKey: "canary", wantTransitions: 2, wantAsked: "canary",
		},
		{
			name: "held and expired: take over",
			setup: func(w *world) {
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2))
				w.expect(false, verdictWait)
				w.clock.Step(leaseDuration)
			},
			want: verdictTakeExpired, wantHolder: "us", wantKey: "stable", wantTransitions: 3, wantAsked: notAsked,
		},
		{
			name: "held and running, our key outranks: preempt", outranks: true,
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2)) },
			want:  verdictPreempt, wantHolder: "us", wantKey: "stable", wantTransitions: 3, wantAsked: "canary",
		},
		{
			name: "held by a keyless holder, our key outranks: preempt", outranks: true,
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("", 0)) },
			want:  verdictPreempt, wantHolder: "us", wantKey: "stable", wantTransitions: 1, wantAsked: "",
		},
		{
			name: "equal keys never preempt, whatever KeyComparison says", outranks: true,
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("stable", 2)) },
			want:  verdictWait, wantHolder: "other", wantKey: "stable", wantTransitions: 2, wantAsked: notAsked,
		},
		{
			name:  "released lock is taken at once",
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, released(4)) },
			want:  verdictTakeFree, wantHolder: "us", wantKey: "stable", wantTransitions: 5, wantAsked: notAsked,
		},
		{
			name: "our own record after a restart is renewed",
			setup: func(w *world) {
				ours := otherHolds("stable", 6)
				ours.HolderIdentity = "us"
				writeRecord(w.t, w.cs, w.kind, ours)
			},
			want: verdictRenew, wantHolder: "us", wantKey: "stable", wantTransitions: 6, wantLeaseTransitions: 7, wantAsked: notAsked,
		},
		{
			name: "leader renews", leading: true,
			setup: func(w *world) { w.lead() },
			want:  verdictRenew, wantHolder: "us", wantKey: "stable", wantAsked: notAsked,
		},
		{
			name: "leader whose own lease ran out reads, then renews", leading: true,
			setup: func(w *world) {
				w.lead()
				w.clock.Step(leaseDuration + time.Second)
			},
			want: verdictRenew, wantHolder: "us", wantKey: "stable", wantAsked: notAsked,
		},
		{
			name: "leader with a stale copy reads, then renews", leading: true,
			setup: func(w *world) {
				w.lead()
				// Someone rewrites our record unchanged: our copy is stale.
				writeRecord(w.t, w.cs, w.kind, readRecord(w.t, w.cs, w.kind))
			},
			want: verdictRenew, wantHolder: "us", wantKey: "stable", wantAsked: notAsked,
		},
		{
			name: "leader finds the lock taken: step down", leading: true,
			setup: func(w *world) {
				w.lead()
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 1))
			},
			want: verdictStepDown, wantHolder: "other", wantKey: "canary", wantTransitions: 1, wantAsked: notAsked,
		},
		{
			name: "leader that would outrank the thief still steps down", leading: true, outranks: true,
			setup: func(w *world) {
				w.lead()
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 1))
			},
			want: verdictStepDown, wantHolder: "other", wantKey: "canary", wantTransitions: 1, wantAsked: notAsked,
		},
		{
			name: "leader preempted, then released before its renewal: step down", leading: true,
			setup: func(w *world) {
				w.lead()
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 1))
				writeRecord(w.t, w.cs, w.kind, released(1))
			},
			want: verdictStepDown, wantHolder: "", wantKey: "", wantTransitions: 1, wantAsked: notAsked,
		},
		{
			name: "leader finds its record unreadable: step down", leading: true, only: annotated,
			setup: func(w *world) {
				w.lead()
				if err := scribble(context.Background(), w.cs, w.kind, "{garbage"); err != nil {
					w.t.Fatal(err)
				}
			},
			want: verdictStepDown, wantHolder: "<unreadable>", wantAsked: notAsked,
		},
		{
			name: "leader finds its lock deleted: step down, create nothing", leading: true,
			only: func(kind string) bool { return objectsPerLock(kind) == 1 },
			setup: func(w *world) {
				w.lead()
				if err := deleteLock(w.cs, w.kind); err != nil {
					w.t.Fatal(err)
				}
			},
			want: verdictStepDown, wantHolder: "<absent>", wantAsked: notAsked,
		},
		{
			name: "unreadable record: wait, never ranked", only: annotated, outranks: true,
			setup: func(w *world) {
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2))
				if err := scribble(context.Background(), w.cs, w.kind, "{garbage"); err != nil {
					w.t.Fatal(err)
				}
			},
			want: verdictWait, wantHolder: "<unreadable>", wantAsked: notAsked,
		},
		{
			name: "multilock halves disagree: wait, never ranked", outranks: true,
			only: func(kind string) bool { return objectsPerLock(kind) == 2 },
			setup: func(w *world) {
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2))
				writeRecord(w.t, w.cs, rl.LeasesResourceLock, rl.LeaderElectionRecord{HolderIdentity: "third", LeaseDurationSeconds: 15})
			},
			want: verdictWait, wantHolder: rl.UnknownLeader, wantKey: "canary", wantTransitions: 2, wantAsked: notAsked,
		},
		{
			name: "read error: no decision", wantErr: true,
			setup: func(w *world) {
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2))
				failNext(w.cs, "get", 1, errors.New("apiserver is down"))
			},
			want: verdictWait, wantHolder: "other", wantKey: "canary", wantTransitions: 2, wantAsked: notAsked,
		},
	}
	for _, fk := range fakes {
		for _, kind := range lockKinds {
			for _, tc := range cases {
				if tc.only != nil && !tc.only(kind) {
					continue
				}
				t.Run(fk.name+"/"+kind+"/"+tc.name, func(t *testing.T) {
					cs := fk.new()
					w := newWorld(t, cs, kind, tc.outranks)
					if tc.setup != nil {
						tc.setup(w)
					}
					w.asked = notAsked
					got, err := w.attempt(tc.leading)
					want := tc.want
					if kind == rl.LeasesResourceLock && tc.wantLeaseTransitions != 0 {
						want = verdictNewTerm
					}
					if got != want || (err != nil) != tc.wantErr {
						t.Fatalf("attempt = %v, %v; want %v (error: %v)", got, err, want, tc.wantErr)
					}
					if w.asked != tc.wantAsked {
						t.Errorf("KeyComparison asked about %q, want %q", w.asked, tc.wantAsked)
					}
					transitions := tc.wantTransitions
					if kind == rl.LeasesResourceLock && tc.wantLeaseTransitions != 0 {
						transitions = tc.wantLeaseTransitions
					}
					checkLockHolds(t, cs, kind, tc.wantHolder, tc.wantKey, transitions)
				})
			}
		}
	}
}

// checkLockHolds checks what the lock holds: a holder, key and transition
// count, or "<unreadable>" or "<absent>".
func checkLockHolds(t *testing.T, cs clientset, kind, holder, key string, transitions int) {
	t.Helper()
	rec, _, err := newTestLock(t, cs, kind, "bystander", "").Get(context.Background())
	switch {
	case holder == "<unreadable>":
		if !errors.Is(err, rl.ErrInvalidRecord) {
			t.Errorf("read the lock: %v, want the unreadable record left as it was", err)
		}
	case holder == "<absent>":
		if !apierrors.IsNotFound(err) {
			t.Errorf("read the lock: %v %+v, want it still absent", err, rec)
		}
	case err != nil:
		t.Errorf("read the lock: %v", err)
	case rec.HolderIdentity != holder || rec.HolderKey != key || rec.LeaderTransitions != transitions:
		t.Errorf("record holder %q key %q transitions %d; want %q %q %d",
			rec.HolderIdentity, rec.HolderKey, rec.LeaderTransitions, holder, key, transitions)
	case holder == "us" && rec.LeaseDurationSeconds != 15:
		t.Errorf("leaseDurationSeconds = %d, want 15", rec.LeaseDurationSeconds)
	}
}

func deleteLock(cs clientset, kind string) error {
	ctx := context.Background()
	switch kind {
	case rl.LeasesResourceLock:
		return cs.CoordinationV1().Leases(testNamespace).Delete(ctx, testLockName, metav1.DeleteOptions{})
	case rl.ConfigMapsResourceLock:
		return cs.CoreV1().ConfigMaps(testNamespace).Delete(ctx, testLockName, metav1.DeleteOptions{})
	case rl.EndpointsResourceLock:
		return cs.CoreV1().Endpoints(testNamespace).Delete(ctx, testLockName, metav1.DeleteOptions{})
	}
	return fmt.Errorf("deleteLock: %s not handled", kind)
}

// TestRenewalCost: on a clientset that versions objects, a renewal is one
// write and no read per lock object. On the stock fake, which does not, an
// update is unconditional, so the leader reads before it writes: a blind
// write would overwrite a new holder unseen.
func TestRenewalCost(t *testing.T) {
	for _, fk := range fakes {
		for _, kind := range lockKinds {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				w := newWorld(t, fk.new(), kind, false)
				w.lead()
				w.clock.Step(retryPeriod)
				w.expect(true, verdictRenew) // a MultiLock creates its Lease's cache here
				w.cs.ClearActions()
				for range 3 {
					w.clock.Step(retryPeriod)
					w.expect(true, verdictRenew)
				}
				objects := objectsPerLock(kind)
				wantReads := 0
				if fk.name == "stock" {
					wantReads = 3 * objects
				}
				reads, writes := count(w.cs, "get", ""), count(w.cs, "update", "")+count(w.cs, "create", "")
				if reads != wantReads || writes != 3*objects {
					t.Fatalf("3 renewals made %d reads and %d writes, want %d and %d", reads, writes, wantReads, 3*objects)
				}
			})
		}
	}
}

// TestRenewalsWithinOneSecondAreSeen: a holder that renews twice within one
// wall-clock second (the record's times have whole-second precision on the
// wire of other libraries) is seen renewing both times, so its lease runs
// from the later renewal.
func TestRenewalsWithinOneSecondAreSeen(t *testing.T) {
	for _, fk := range fakes {
		for _, kind := range lockKinds {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				w := newWorld(t, fk.new(), kind, false)
				holder := otherHolds("canary", 0)
				renew := func() {
					holder.RenewTime = metav1.NewTime(w.clock.Now())
					writeRecord(t, w.cs, kind, holder)
				}
				w.clock.SetTime(t0.Add(100 * time.Millisecond))
				renew()
				w.clock.SetTime(t0.Add(300 * time.Millisecond))
				w.expect(false, verdictWait)
				w.clock.SetTime(t0.Add(600 * time.Millisecond))
				renew()
				lastSeen := t0.Add(800 * time.Millisecond)
				w.clock.SetTime(lastSeen)
				w.expect(false, verdictWait)
				w.clock.SetTime(lastSeen.Add(leaseDuration - time.Nanosecond))
				w.expect(false, verdictWait) // counted from 0.3s, the lease would have run out
				w.clock.SetTime(lastSeen.Add(leaseDuration))
				w.expect(false, verdictTakeExpired)
			})
		}
	}
}

// TestWholeSecondRenewalsWithinOneSecondAreSeen: a holder whose records
// carry whole seconds (Istio's fork writes them so on ConfigMaps) renews
// twice within one second with identical bytes. Where the API server
// versions objects, the second write still counts.
func TestWholeSecondRenewalsWithinOneSecondAreSeen(t *testing.T) {
	const istioRecord = `{"holderIdentity":"istiod-1","holderKey":"canary","leaseDurationSeconds":15,` +
		`"acquireTime":"2026-11-30T09:00:00Z","renewTime":"2026-11-30T09:00:00Z","leaderTransitions":0}`
	for _, kind := range []string{rl.ConfigMapsResourceLock, rl.EndpointsResourceLock} {
		t.Run(kind, func(t *testing.T) {
			cs := fakekube.New(annotatedObjects(istioRecord)...)
			w := newWorld(t, cs, kind, false)
			w.clock.SetTime(t0.Add(300 * time.Millisecond))
			w.expect(false, verdictWait)
			w.clock.SetTime(t0.Add(600 * time.Millisecond))
			if err := scribble(context.Background(), cs, kind, istioRecord); err != nil {
				t.Fatal(err)
			}
			lastSeen := t0.Add(800 * time.Millisecond)
			w.clock.SetTime(lastSeen)
			w.expect(false, verdictWait)
			w.clock.SetTime(lastSeen.Add(leaseDuration - time.Nanosecond))
			w.expect(false, verdictWait)
			w.clock.SetTime(lastSeen.Add(leaseDuration))
			w.expect(false, verdictTakeExpired)
		})
	}
}

// TestOddRecordsAreTakenOnTime starts a candidate against records no
// well-behaved elector writes. Each is taken either at once (nobody holds
// it) or after the lease that applies (somebody might), never sooner and
// never not at all.
func TestOddRecordsAreTakenOnTime(t *testing.T) {
	const atOnce = time.Duration(0)
	annotatedCM := func(record string) []runtime.Object { return annotatedObjects(record)[:1] }
	annotatedEP := func(record string) []runtime.Object { return annotatedObjects(record)[1:] }
	cases := []struct {
		name    string
		kind    string
		objects []runtime.Object
		wait    time.Duration
	}{
		{"annotation is not JSON", rl.ConfigMapsResourceLock, annotatedCM("{garbage"), leaseDuration},
		{"annotation has wrong types", rl.EndpointsResourceLock, annotatedEP(`{"holderIdentity":7}`), leaseDuration},
		{"multilock primary is not JSON", rl.ConfigMapsLeasesResourceLock, annotatedCM("]["), leaseDuration},
		{"zero lease duration", rl.ConfigMapsResourceLock, annotatedCM(`{"holderIdentity":"x","leaseDurationSeconds":0}`), leaseDuration},
		{"negative lease duration", rl.EndpointsResourceLock, annotatedEP(`{"holderIdentity":"x","leaseDurationSeconds":-30}`), leaseDuration},
		{"lease duration beyond int64", rl.ConfigMapsResourceLock, annotatedCM(`{"holderIdentity":"x","leaseDurationSeconds":99999999999999999999}`), leaseDuration},
		{"lease duration above MaxLeaseDuration", rl.ConfigMapsResourceLock, annotatedCM(`{"holderIdentity":"x","leaseDurationSeconds":3601}`), leaseDuration},
		{"holder's lease longer than ours", rl.ConfigMapsResourceLock, annotatedCM(`{"holderIdentity":"x","leaseDurationSeconds":40}`), 40 * time.Second},
		{"holder's lease shorter than ours", rl.ConfigMapsResourceLock, annotatedCM(`{"holderIdentity":"x","leaseDurationSeconds":5}`), 5 * time.Second},
		{"empty holder with a key", rl.ConfigMapsResourceLock, annotatedCM(`{"holderIdentity":"","holderKey":"k","leaseDurationSeconds":15}`), atOnce},
		{"annotation is null", rl.ConfigMapsResourceLock, annotatedCM(`null`), atOnce},
		{"lease with no spec fields", rl.LeasesResourceLock, leaseObject(coordinationv1.LeaseSpec{}), atOnce},
		{"lease holder without duration", rl.LeasesResourceLock, leaseObject(coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x")}), leaseDuration},
		{"lease with negative duration", rl.LeasesResourceLock, leaseObject(coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x"), LeaseDurationSeconds: ptr.To[int32](-1)}), leaseDuration},
		{"lease held for 68 years by a dead holder", rl.LeasesResourceLock, leaseObject(coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x"), LeaseDurationSeconds: ptr.To[int32](1<<31 - 1)}), leaseDuration},
	}
	for _, fk := range fakes {
		for _, tc := range cases {
			t.Run(fk.name+"/"+tc.name, func(t *testing.T) {
				w := newWorld(t, fk.new(tc.objects...), tc.kind, false)
				if tc.wait == atOnce {
					if v, err := w.attempt(false); err != nil || !v.changesHands() {
						t.Fatalf("first attempt: %v, %v; want to take the lock at once", v, err)
					}
				} else {
					w.expect(false, verdictWait)
					w.clock.Step(tc.wait - time.Nanosecond)
					w.expect(false, verdictWait)
					w.clock.Step(time.Nanosecond)
					w.expect(false, verdictTakeExpired)
				}
				checkLockHolds(t, w.cs, tc.kind, "us", "stable", 1)
			})
		}
	}
}

// TestRewrittenGarbageIsNeverTaken: while a third party keeps rewriting the
// record with garbage, no candidate can tell it from a live leader's
// renewals, so nobody takes the lock; a lease after the last rewrite,
// someone does. A record repaired by a holder is trusted again at once.
func TestRewrittenGarbageIsNeverTaken(t *testing.T) {
	for _, fk := range fakes {
		for _, kind := range []string{rl.ConfigMapsResourceLock, rl.EndpointsResourceLock, rl.ConfigMapsLeasesResourceLock} {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				ctx := context.Background()
				w := newWorld(t, fk.new(), kind, true)
				writeRecord(t, w.cs, kind, otherHolds("canary", 3))
				for i := range 30 {
					if err := scribble(ctx, w.cs, kind, fmt.Sprintf("junk-%d", i)); err != nil {
						t.Fatal(err)
					}
					w.clock.Step(leaseDuration / 2)
					w.expect(false, verdictWait)
					w.clock.Step(leaseDuration / 2)
					w.expect(false, verdictWait)
				}
				if w.asked != notAsked {
					t.Fatalf("KeyComparison was asked about garbage (key %q)", w.asked)
				}
				// The holder repairs it: its key is ranked again, and ours
				// outranks it.
				holder := otherHolds("old", 3)
				writeRecord(t, w.cs, kind, holder)
				w.expect(false, verdictPreempt)
				if w.asked != "old" {
					t.Fatalf("KeyComparison asked about %q after the repair, want old", w.asked)
				}
			})
		}
	}
}

// TestMultiLockCountsBothHalves: mid-migration, a candidate that uses only
// the Lease leads and renews it, while the ConfigMap still names the last
// MultiLock leader. A MultiLock candidate sees the halves disagree and must
// count each Lease renewal as a sign of life, or it would take over after
// one lease from a leader that is alive.
func TestMultiLockCountsBothHalves(t *testing.T) {
	for _, fk := range fakes {
		for _, kind := range []string{rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock} {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				w := newWorld(t, fk.new(), kind, false)
				writeRecord(t, w.cs, kind, otherHolds("canary", 1)) // the last MultiLock leader, both halves
				leaseOnly := rl.LeaderElectionRecord{HolderIdentity: "lease-only", LeaseDurationSeconds: 15, LeaderTransitions: 2}
				for range 20 {
					leaseOnly.RenewTime = metav1.NewTime(w.clock.Now())
					writeRecord(t, w.cs, rl.LeasesResourceLock, leaseOnly)
					w.expect(false, verdictWait)
					w.clock.Step(retryPeriod)
				}
				w.expect(false, verdictWait)
				w.clock.Step(leaseDuration - retryPeriod)
				w.expect(false, verdictTakeExpired)
			})
		}
	}
}

// TestMigrationKeepsTheTerm: a candidate that moves from a ConfigMap lock to
// configmapsleases (or Endpoints to endpointsleases) keeps the record's
// acquire time and transitions, whether it held the lock before the move or
// takes it over after.
func TestMigrationKeepsTheTerm(t *testing.T) {
	for _, fk := range fakes {
		for _, step := range []struct{ from, to string }{
			{rl.ConfigMapsResourceLock, rl.ConfigMapsLeasesResourceLock},
			{rl.EndpointsResourceLock, rl.EndpointsLeasesResourceLock},
		} {
			t.Run(fk.name+"/"+step.to+"/same identity", func(t *testing.T) {
				cs := fk.new()
				before := otherHolds("stable", 5)
				before.HolderIdentity = "us"
				writeRecord(t, cs, step.from, before)
				w := newWorld(t, cs, step.to, false)
				w.expect(false, verdictRenew)
				w.le.startLeading(w.clock.Now())
				w.clock.Step(retryPeriod)
				w.expect(true, verdictRenew) // creates the Lease
				for _, kind := range []string{step.from, rl.LeasesResourceLock} {
					got := readRecord(t, cs, kind)
					if got.HolderIdentity != "us" || got.LeaderTransitions != 5 || !got.AcquireTime.Equal(&before.AcquireTime) {
						t.Errorf("%s after the move: %+v; want us, 5 transitions, acquired %v", kind, got, before.AcquireTime)
					}
				}
			})
			t.Run(fk.name+"/"+step.to+"/new identity", func(t *testing.T) {
				cs := fk.new()
				writeRecord(t, cs, step.from, otherHolds("canary", 5))
				w := newWorld(t, cs, step.to, false)
				w.expect(false, verdictWait)
				w.clock.Step(leaseDuration)
				w.expect(false, verdictTakeExpired)
				w.le.startLeading(w.clock.Now())
				w.clock.Step(retryPeriod)
				w.expect(true, verdictRenew)
				for _, kind := range []string{step.from, rl.LeasesResourceLock} {
					if got := readRecord(t, cs, kind); got.HolderIdentity != "us" || got.LeaderTransitions != 6 {
						t.Errorf("%s after the takeover: %+v; want us, 6 transitions", kind, got)
					}
				}
			})
		}
	}
}

// TestLosingARaceIsAnError: a candidate whose create or takeover loses to
// another candidate's, between its read and its write, reports the error
// and does not hold the lock.
func TestLosingARaceIsAnError(t *testing.T) {
	// beforeFirstWrite makes the other candidate write rec just before our
	// first write.
	beforeFirstWrite := func(t *testing.T, cs clientset, kind string, rec rl.LeaderElectionRecord) func(rl.Interface) rl.Interface {
		return func(lock rl.Interface) rl.Interface {
			raced := false
			return &hookedLock{Interface: lock, beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
				if !raced {
					raced = true
					writeRecord(t, cs, kind, rec)
				}
				return nil
			}}
		}
	}
	t.Run("create", func(t *testing.T) {
		for _, fk := range fakes {
			for _, kind := range lockKinds {
				t.Run(fk.name+"/"+kind, func(t *testing.T) {
					cs := fk.new()
					w := newWorld(t, cs, kind, false, beforeFirstWrite(t, cs, kind, otherHolds("canary", 0)))
					v, err := w.attempt(false)
					if v != verdictCreate || !apierrors.IsAlreadyExists(err) {
						t.Fatalf("attempt = %v, %v; want create failing with AlreadyExists", v, err)
					}
					checkLockHolds(t, cs, kind, "other", "canary", 0)
				})
			}
		}
	})
	t.Run("takeover", func(t *testing.T) {
		for _, kind := range lockKinds {
			t.Run(kind, func(t *testing.T) {
				cs := fakekube.New()
				writeRecord(t, cs, kind, released(2))
				w := newWorld(t, cs, kind, false, beforeFirstWrite(t, cs, kind, otherHolds("canary", 3)))
				v, err := w.attempt(false)
				if v != verdictTakeFree || !apierrors.IsConflict(err) {
					t.Fatalf("attempt = %v, %v; want a takeover failing with a Conflict", v, err)
				}
				checkLockHolds(t, cs, kind, "other", "canary", 3)
				if w.le.GetLeader() == "us" {
					t.Fatal("GetLeader names us after we lost the race")
				}
			})
		}
	})
}

// TestRenewKeepsAcquireTime: a renewal moves the renew time, not the
// acquire time.
func TestRenewKeepsAcquireTime(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			w := newWorld(t, fk.new(), rl.LeasesResourceLock, false)
			w.lead()
			acquired := readRecord(t, w.cs, rl.LeasesResourceLock).AcquireTime
			w.clock.Step(retryPeriod)
			w.expect(true, verdictRenew)
			rec := readRecord(t, w.cs, rl.LeasesResourceLock)
			if !rec.AcquireTime.Equal(&acquired) || !rec.RenewTime.Time.Equal(w.clock.Now()) {
				t.Fatalf("after renewal acquireTime %v renewTime %v; want %v and %v", rec.AcquireTime, rec.RenewTime, acquired, w.clock.Now())
			}
		})
	}
}

func TestSlowPathRenewalIsCounted(t *testing.T) {
	name := "slowpath-" + uniqueName()
	cs := fakekube.New()
	lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", ""))
	lec.Name = name
	le := newTestElector(t, lec, clocktesting.NewFakeClock(t0))
	if v, err := le.tryAcquireOrRenew(context.Background(), false); v != verdictCreate || err != nil {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(t0)
	if v, err := le.tryAcquireOrRenew(context.Background(), true); v != verdictRenew || err != nil {
		t.Fatalf("fast renewal: %v %v", v, err)
	}
	writeRecord(t, cs, rl.LeasesResourceLock, readRecord(t, cs, rl.LeasesResourceLock))
	if v, err := le.tryAcquireOrRenew(context.Background(), true); v != verdictRenew || err != nil {
		t.Fatalf("slow renewal: %v %v", v, err)
	}
	if got, want := testMetrics.calls(name), []string{"off", "on", "slowpath"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("metric calls = %v, want %v", got, want)
	}
}

// TestPanickingKeyComparison: the panic is contained and read as "do not
// preempt".
func TestPanickingKeyComparison(t *testing.T) {
	cs := fakekube.New()
	writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("old", 0))
	lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", "new"))
	calls := 0
	lec.KeyComparison = func(string) bool { calls++; panic("comparison bug") }
	le := newTestElector(t, lec, clocktesting.NewFakeClock(t0))
	for range 2 {
		if v, err := le.tryAcquireOrRenew(context.Background(), false); v != verdictWait || err != nil {
			t.Fatalf("attempt = %v, %v; want wait", v, err)
		}
	}
	if calls != 2 {
		t.Fatalf("KeyComparison called %d times, want 2", calls)
	}
}

// nothingLock is a custom lock whose Get returns neither a record nor an
// error.
type nothingLock struct{ rl.Interface }

func (nothingLock) Get(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	return nil, nil, nil
}

func TestGetReturningNothingIsAnError(t *testing.T) {
	lock := nothingLock{newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", "")}
	le := newTestElector(t, testConfig(lock), clocktesting.NewFakeClock(t0))
	v, err := le.tryAcquireOrRenew(context.Background(), false)
	if v != verdictWait || err == nil || !strings.Contains(err.Error(), "neither a record nor an error") {
		t.Fatalf("attempt = %v, %v; want an error saying Get returned nothing", v, err)
	}
}

// conflicts makes the next n updates on cs fail with a Conflict.
func conflicts(cs clientset, n int) *int {
	left := n
	cs.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if left == 0 {
			return false, nil, nil
		}
		left--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: a.GetResource().Resource}, testLockName, nil)
	})
	return &left
}

// failNext makes the next n requests with verb on cs fail with err.
func failNext(cs clientset, verb string, n int, err error) {
	left := n
	cs.PrependReactor(verb, "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if left == 0 {
			return false, nil, nil
		}
		left--
		return true, nil, err
	})
}

// logger is for calls that take one outside Run.
var logger = klog.Background()

// TestCandidatesSharingAWatchTakeTheirFirstLookFromIt: the candidates of a
// process that (re)starts in many elections, whose Lease locks share a
// client, take their first look at their Leases from the shared watch of
// the namespace: one list and one watch, and no read of a Lease of their
// own. (Thousands of reads at once would queue the shared watch's list
// behind them, and leave every candidate polling until it opened.) Every
// election still ends with one leader once its holder's lease runs out. On
// client-go's stock fake before v0.36, whose versions order nothing, there
// is no shared watch, and each reads as before.
func TestCandidatesSharingAWatchTakeTheirFirstLookFromIt(t *testing.T) {
	const elections = 10
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		now := metav1.NewMicroTime(time.Now())
		for i := range elections {
			lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: fmt.Sprintf("election-%d", i)},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("gone"), LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)),
					AcquireTime: &now, RenewTime: &now}}
			if _, err := cs.CoordinationV1().Leases(testNamespace).Create(t.Context(), lease, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		cs.ClearActions()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		fleets := make([]*fleet, elections)
		var electors [elections][]*LeaderElector
		for i := range elections {
			fleets[i] = newFleet()
			for _, id := range []string{"a", "b", "c"} {
				lock, err := rl.New(rl.LeasesResourceLock, testNamespace, fmt.Sprintf("election-%d", i), cs.CoreV1(), cs.CoordinationV1(),
					rl.ResourceLockConfig{Identity: id})
				if err != nil {
					t.Fatal(err)
				}
				electors[i] = append(electors[i], member(t, ctx, &wg, testConfig(lock), fleets[i]))
			}
		}
		time.Sleep(leaseDuration / 2)
		shared := count(cs, "list", "leases") > 0
		gets := count(cs, "get", "leases")
		time.Sleep(leaseDuration)
		for i, les := range electors {
			leaders := 0
			for _, le := range les {
				if le.IsLeader() {
					leaders++
				}
			}
			if leaders != 1 {
				t.Errorf("election-%d has %d leaders once its holder's lease ran out; want 1", i, leaders)
			}
		}
		cancel()
		wg.Wait()
		if fk.name != "strict" {
			// Three followers taking one expired lease at the same
			// instant may overlap until the loser's next renewal on
			// a fake that does not refuse a stale write
			// (TestStockFakeRaceLoserStepsDownOnNextRenewal).
			return
		}
		for _, f := range fleets {
			f.check(t)
		}
		if !shared {
			t.Fatal("the candidates' Lease locks never listed their namespace: no shared watch ran")
		}
		if gets > 0 {
			t.Fatalf("%d candidates sharing a watch of their namespace sent %d reads of their Leases while each was held; want none, each taking its first look from the shared watch",
				3*elections, gets)
		}
	})
}

// stagedLeases wraps a LeasesGetter for a test that stages what a
// candidate's shared watch and reads see: the namespace's list answers
// listDelay after it has read the Leases, the namespace's watch is watchFn
// (if set), and beforeGet (if set) runs before each read of a Lease.
type stagedLeases struct {
	coordinationv1client.LeasesGetter
	listDelay time.Duration
	watchFn   func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	beforeGet func()
}

func (s *stagedLeases) Leases(namespace string) coordinationv1client.LeaseInterface {
	return stagedLeaseInterface{s.LeasesGetter.Leases(namespace), s}
}

type stagedLeaseInterface struct {
	coordinationv1client.LeaseInterface
	s *stagedLeases
}

func (l stagedLeaseInterface) List(ctx context.Context, opts metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	list, err := l.LeaseInterface.List(ctx, opts)
	select {
	case <-time.After(l.s.listDelay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return list, err
}

func (l stagedLeaseInterface) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if l.s.watchFn != nil && opts.FieldSelector == "" {
		return l.s.watchFn(ctx, opts)
	}
	return l.LeaseInterface.Watch(ctx, opts)
}

func (l stagedLeaseInterface) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	if l.s.beforeGet != nil {
		l.s.beforeGet()
	}
	return l.LeaseInterface.Get(ctx, name, opts)
}

// laggingWatch passes on the events of a watch, each lag after it came.
type laggingWatch struct {
	inner watch.Interface
	out   chan watch.Event
	stop  chan struct{}
	once  sync.Once
}

func newLaggingWatch(inner watch.Interface, lag time.Duration) *laggingWatch {
	l := &laggingWatch{inner: inner, out: make(chan watch.Event), stop: make(chan struct{})}
	go func() {
		defer close(l.out)
		for {
			select {
			case ev, ok := <-inner.ResultChan():
				if !ok {
					return
				}
				select {
				case <-time.After(lag):
				case <-l.stop:
					return
				}
				select {
				case l.out <- ev:
				case <-l.stop:
					return
				}
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

func (l *laggingWatch) ResultChan() <-chan watch.Event { return l.out }

func (l *laggingWatch) Stop() {
	l.once.Do(func() {
		close(l.stop)
		l.inner.Stop()
	})
}

// runNotingLeaders runs candidate b on a Lease lock read through client,
// noting every leader OnNewLeader reports.
func runNotingLeaders(t *testing.T, ctx context.Context, client coordinationv1client.LeasesGetter) (*candidate, *leadersSeen) {
	t.Helper()
	leaders := &leadersSeen{}
	lec := testConfig(rewiredLeaseLock(client, testNamespace, "b"))
	lec.Callbacks.OnNewLeader = leaders.add
	return runCandidate(t, ctx, lec, nil), leaders
}

// leadersSeen records what OnNewLeader is called with.
type leadersSeen struct {
	mu  sync.Mutex
	ids []string
}

func (l *leadersSeen) add(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, id)
}

func (l *leadersSeen) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}

// TestSharedWatchOpeningAfterTheFirstReadReplaysNoOlderState: a candidate
// whose shared watch is slow to open reads its Lease after a RetryPeriod;
// the watch, asked for before that read, opens later from a list taken
// before it. The states older than the one read that it replays are not
// news: the candidate never reports a leader the lock has left.
func TestSharedWatchOpeningAfterTheFirstReadReplaysNoOlderState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const opens = 3 * retryPeriod
		cs := fakekube.New()
		holder := otherHolds("", 0)
		holder.LeaseDurationSeconds = 3600
		writeLease(t, cs.CoordinationV1(), testNamespace, holder)
		replay := watch.NewFakeWithChanSize(10, false)
		client := &stagedLeases{LeasesGetter: cs.CoordinationV1(), listDelay: opens,
			watchFn: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return replay, nil }}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		b, leaders := runNotingLeaders(t, ctx, client)
		// The candidate reads the second holder; the shared watch opens
		// from its list's state (other).
		changeHandsWhileTheWatchOpens(t, cs.CoordinationV1(), holder, replay, opens)
		cancel()
		b.finished(t)
		if got, want := leaders.get(), []string{"d"}; !slices.Equal(got, want) {
			t.Fatalf("OnNewLeader saw %v, want %v: the shared watch, asked for before the first read, replayed states older than the one read", got, want)
		}
	})
}

// TestSharedWatchThatKnowsNoLeaseReplaysNoStateOlderThanTheRead: a
// candidate whose shared watch opened and knows no such Lease reads it; the
// Lease was created and changed hands since, and the watch, opened before
// that read, delivers both states after it. Neither is news: the candidate
// never reports a leader the lock has left.
func TestSharedWatchThatKnowsNoLeaseReplaysNoStateOlderThanTheRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var once sync.Once
		// The shared watch delivers each event a second late, as a
		// watch under load does.
		lagging := func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := cs.CoordinationV1().Leases(testNamespace).Watch(ctx, opts)
			if err != nil {
				return nil, err
			}
			return newLaggingWatch(w, time.Second), nil
		}
		client := &stagedLeases{LeasesGetter: cs.CoordinationV1(), watchFn: lagging, beforeGet: func() {
			once.Do(func() {
				rec := otherHolds("", 0)
				rec.LeaseDurationSeconds = 3600
				for _, id := range []string{"c", "d"} {
					rec.HolderIdentity = id
					writeLease(t, cs.CoordinationV1(), testNamespace, rec)
				}
			})
		}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		b, leaders := runNotingLeaders(t, ctx, client)
		time.Sleep(2 * retryPeriod)
		cancel()
		b.finished(t)
		if count(cs, "list", "leases") == 0 {
			t.Fatal("the candidate's Lease lock never listed its namespace: no shared watch ran")
		}
		if got, want := leaders.get(), []string{"d"}; !slices.Equal(got, want) {
			t.Fatalf("OnNewLeader saw %v, want %v: the shared watch, opened before the first read, delivered states older than the one read", got, want)
		}
	})
}

// priorities notes each request of a lock, and whether it was marked as a
// leader's (rl.WithLeaderPriority).
type priorities struct {
	mu   sync.Mutex
	sent []string
}

func (p *priorities) note(ctx context.Context, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, fmt.Sprintf("%s leader=%t", what, rl.HasLeaderPriority(ctx)))
}

// hook wraps lock so that its requests are noted; beforeWrite, if set, runs
// after a write is noted and before it is sent.
func (p *priorities) hook(lock rl.Interface, beforeWrite func()) *hookedLock {
	return &hookedLock{Interface: lock,
		beforeGet: func(ctx context.Context) error { p.note(ctx, "get"); return nil },
		beforeWrite: func(ctx context.Context, record rl.LeaderElectionRecord) error {
			p.note(ctx, "write holder="+record.HolderIdentity)
			if beforeWrite != nil {
				beforeWrite()
			}
			return nil
		}}
}

// takenThenMarked fails unless the lock was read and created as a
// candidate's, then sent at least more requests, each marked as a
// leader's; it returns the requests.
func (p *priorities) takenThenMarked(t *testing.T, more int, while string) []string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	want := []string{"get leader=false", "write holder=us leader=false"}
	if len(p.sent) < len(want)+more || !slices.Equal(p.sent[:len(want)], want) {
		t.Fatalf("requests %q, want %q, then at least %d more", p.sent, want, more)
	}
	for _, got := range p.sent[len(want):] {
		if !strings.HasSuffix(got, "leader=true") {
			t.Fatalf("requests %q: %q, sent %s, is not marked as a leader's", p.sent, got, while)
		}
	}
	return slices.Clone(p.sent)
}

// leadFor runs an elector of lec until it has led for hold, then cancels it
// and waits for Run to return.
func leadFor(t *testing.T, lec LeaderElectionConfig, hold time.Duration) {
	t.Helper()
	leading := make(chan struct{})
	lec.Callbacks.OnStartedLeading = func(context.Context) { close(leading) }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); newTestElector(t, lec, nil).Run(ctx) }()
	receive(t, leading, "Run to lead")
	time.Sleep(hold)
	cancel()
	receive(t, done, "Run to return")
}

// A leader's requests (its renewals, its release) are marked to go ahead of
// candidates' on a shared client (rl.WithLeaderPriority); a candidate's,
// the write that takes the lock included, are not.
func TestLeaderMarksItsRequestsToGoAheadOfCandidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p priorities
		lec := testConfig(p.hook(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", ""), nil))
		lec.ReleaseOnCancel = true
		leadFor(t, lec, leaseDuration)
		sent := p.takenThenMarked(t, 2, "while leading")
		if last := sent[len(sent)-1]; last != "write holder= leader=true" {
			t.Fatalf("requests %q end with %q, want the release", sent, last)
		}
	})
}

// A write that took the lock but was answered after its term's renew
// deadline leaves the lock naming us: every other candidate waits out our
// lease, and nobody leads until our next write answers in time. That write,
// and the read before it, are a holder's and go ahead of candidates' (in a
// burst of candidates' reads, a candidate's would be late again, and again).
func TestHolderThatWasAnsweredLateRenewsAsALeader(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		var p priorities
		writes := 0
		lec := testConfig(p.hook(newTestLock(t, fk.new(), rl.LeasesResourceLock, "us", ""), func() {
			if writes++; writes == 1 {
				// The API server answers the write that takes the lock
				// after the term it began is over.
				time.Sleep(renewDeadline)
			}
		}))
		leadFor(t, lec, 0)
		p.takenThenMarked(t, 1, "while the lock named us")
	})
}
