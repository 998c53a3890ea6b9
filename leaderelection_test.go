package k8sleaderelection

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// world is one table case's lock, clock and elector. We are "us" with key
// "stable"; the other candidate is "other" with key "canary".
type world struct {
	t     *testing.T
	kind  string
	cs    *fakekube.Clientset
	clock *clocktesting.FakeClock
	le    *LeaderElector
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

func otherHolds(key string, transitions int) rl.LeaderElectionRecord {
	now := metav1.NewTime(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	return rl.LeaderElectionRecord{
		HolderIdentity: "other", HolderKey: key, LeaseDurationSeconds: 15,
		AcquireTime: now, RenewTime: now, LeaderTransitions: transitions,
	}
}

// TestTryAcquireOrRenew drives one attempt per case against every lock kind
// and checks the decision, the record it leaves, and the requests it cost.
func TestTryAcquireOrRenew(t *testing.T) {
	const any = -1
	cases := []struct {
		name     string
		outranks bool // what our KeyComparison answers
		setup    func(w *world)
		leading  bool

		want            verdict
		wantErr         bool
		wantHolder      string
		wantKey         string
		wantTransitions int
		wantReads       int // any: not checked; -2: one read of the lock kind
		wantWrites      int // any: not checked; -2: one write of the lock kind
		wantComparedKey string
	}{
		{
			name: "absent lock is created", want: verdictCreate,
			wantHolder: "us", wantKey: "stable", wantTransitions: 0, wantReads: any, wantWrites: any,
		},
		{
			name:  "held and running: wait",
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2)) },
			want:  verdictWait, wantHolder: "other", wantKey: "canary", wantTransitions: 2,
			wantReads: any, wantWrites: 0, wantComparedKey: "canary",
		},
		{
			name: "held and expired: take over",
			setup: func(w *world) {
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2))
				if v, _ := w.attempt(false); v != verdictWait {
					w.t.Fatalf("first look: %v, want wait", v)
				}
				w.clock.Step(leaseDuration + time.Second)
			},
			want: verdictTakeExpired, wantHolder: "us", wantKey: "stable", wantTransitions: 3,
			wantReads: any, wantWrites: any,
		},
		{
			name: "held and running, our key outranks: preempt", outranks: true,
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2)) },
			want:  verdictPreempt, wantHolder: "us", wantKey: "stable", wantTransitions: 3,
			wantReads: any, wantWrites: any, wantComparedKey: "canary",
		},
		{
			name: "held by a keyless holder, our key outranks: preempt", outranks: true,
			setup: func(w *world) { writeRecord(w.t, w.cs, w.kind, otherHolds("", 0)) },
			want:  verdictPreempt, wantHolder: "us", wantKey: "stable", wantTransitions: 1,
			wantReads: any, wantWrites: any, wantComparedKey: "",
		},
		{
			name: "released lock is taken at once",
			setup: func(w *world) {
				released := otherHolds("", 4)
				released.HolderIdentity, released.LeaseDurationSeconds = "", 1
				writeRecord(w.t, w.cs, w.kind, released)
			},
			want: verdictTakeFree, wantHolder: "us", wantKey: "stable", wantTransitions: 5,
			wantReads: any, wantWrites: any,
		},
		{
			name: "our own record after a restart is renewed",
			setup: func(w *world) {
				ours := otherHolds("stable", 6)
				ours.HolderIdentity = "us"
				writeRecord(w.t, w.cs, w.kind, ours)
			},
			want: verdictRenew, wantHolder: "us", wantKey: "stable", wantTransitions: 6,
			wantReads: any, wantWrites: any,
		},
		{
			name: "leader renews with one write and no read", leading: true,
			setup: func(w *world) { w.lead() },
			want:  verdictRenew, wantHolder: "us", wantKey: "stable", wantTransitions: 0,
			wantReads: 0, wantWrites: -2,
		},
		{
			name: "leader whose own lease ran out reads before it writes", leading: true,
			setup: func(w *world) {
				w.lead()
				w.clock.Step(leaseDuration + time.Second)
			},
			want: verdictRenew, wantHolder: "us", wantKey: "stable", wantTransitions: 0,
			wantReads: -2, wantWrites: -2,
		},
		{
			name: "leader with a stale copy reads and renews", leading: true,
			setup: func(w *world) {
				w.lead()
				// Someone rewrites our record unchanged: our copy is stale.
				writeRecord(w.t, w.cs, w.kind, readRecord(w.t, w.cs, w.kind))
			},
			want: verdictRenew, wantHolder: "us", wantKey: "stable", wantTransitions: 0,
			wantReads: any, wantWrites: any,
		},
		{
			name: "leader finds the lock taken: step down", leading: true,
			setup: func(w *world) {
				w.lead()
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 1))
			},
			want: verdictStepDown, wantHolder: "other", wantKey: "canary", wantTransitions: 1,
			wantReads: any, wantWrites: any,
		},
		{
			name: "leader that would outrank the thief still steps down", leading: true, outranks: true,
			setup: func(w *world) {
				w.lead()
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 1))
			},
			want: verdictStepDown, wantHolder: "other", wantKey: "canary", wantTransitions: 1,
			wantReads: any, wantWrites: any,
		},
		{
			name: "read error: no decision",
			setup: func(w *world) {
				writeRecord(w.t, w.cs, w.kind, otherHolds("canary", 2))
				w.cs.SetOutage(errors.New("apiserver is down"))
			},
			want: verdictWait, wantErr: true, wantReads: any, wantWrites: 0,
		},
	}
	for _, kind := range lockKinds {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				compared := "<not asked>"
				cs := fakekube.New()
				lec := testConfig(newTestLock(t, cs, kind, "us", "stable"))
				lec.KeyComparison = func(existing string) bool { compared = existing; return tc.outranks }
				w := &world{t: t, kind: kind, cs: cs, clock: clocktesting.NewFakeClock(time.Now())}
				w.le = newTestElector(t, lec, w.clock)
				if tc.setup != nil {
					tc.setup(w)
				}
				cs.ClearActions()

				got, err := w.attempt(tc.leading)
				if got != tc.want || (err != nil) != tc.wantErr {
					t.Fatalf("attempt = %v, %v; want %v (error: %v)", got, err, tc.want, tc.wantErr)
				}
				reads, writes := cs.Count("get", ""), cs.Count("update", "")+cs.Count("create", "")
				wantReads := tc.wantReads
				if wantReads == -2 {
					wantReads = objectsPerLock(kind)
				}
				if wantReads != any && reads != wantReads {
					t.Errorf("reads = %d, want %d", reads, wantReads)
				}
				wantWrites := tc.wantWrites
				if wantWrites == -2 {
					wantWrites = objectsPerLock(kind)
				}
				if wantWrites != any && writes != wantWrites {
					t.Errorf("writes = %d, want %d", writes, wantWrites)
				}
				if tc.wantComparedKey != "" || tc.want == verdictPreempt || tc.want == verdictWait && !tc.wantErr {
					if compared != tc.wantComparedKey {
						t.Errorf("KeyComparison got %q, want %q", compared, tc.wantComparedKey)
					}
				}
				if tc.wantErr {
					return
				}
				rec := readRecord(t, cs, kind)
				if rec.HolderIdentity != tc.wantHolder || rec.HolderKey != tc.wantKey || rec.LeaderTransitions != tc.wantTransitions {
					t.Errorf("record holder %q key %q transitions %d; want %q %q %d",
						rec.HolderIdentity, rec.HolderKey, rec.LeaderTransitions, tc.wantHolder, tc.wantKey, tc.wantTransitions)
				}
				if tc.wantHolder == "us" && rec.LeaseDurationSeconds != 15 {
					t.Errorf("leaseDurationSeconds = %d, want 15", rec.LeaseDurationSeconds)
				}
				if w.le.GetLeader() != tc.wantHolder {
					t.Errorf("GetLeader = %q, want %q", w.le.GetLeader(), tc.wantHolder)
				}
			})
		}
	}
}

func TestRenewKeepsAcquireTime(t *testing.T) {
	cs := fakekube.New()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	le := newTestElector(t, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", "")), clk)
	if v, err := le.tryAcquireOrRenew(context.Background(), false); v != verdictCreate || err != nil {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(clk.Now())
	acquired := readRecord(t, cs, rl.LeasesResourceLock).AcquireTime
	clk.Step(retryPeriod)
	if v, err := le.tryAcquireOrRenew(context.Background(), true); v != verdictRenew || err != nil {
		t.Fatalf("renew: %v %v", v, err)
	}
	rec := readRecord(t, cs, rl.LeasesResourceLock)
	if !rec.AcquireTime.Equal(&acquired) || !rec.RenewTime.Time.Equal(clk.Now()) {
		t.Fatalf("after renewal acquireTime %v renewTime %v; want %v and %v", rec.AcquireTime, rec.RenewTime, acquired, clk.Now())
	}
}

func TestSlowPathRenewalIsCounted(t *testing.T) {
	name := "slowpath-" + uniqueName()
	cs := fakekube.New()
	lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", ""))
	lec.Name = name
	w := &world{t: t, kind: rl.LeasesResourceLock, cs: cs, clock: clocktesting.NewFakeClock(time.Now())}
	w.le = newTestElector(t, lec, w.clock)
	w.lead()
	if v, err := w.attempt(true); v != verdictRenew || err != nil {
		t.Fatalf("fast renewal: %v %v", v, err)
	}
	writeRecord(t, cs, w.kind, readRecord(t, cs, w.kind))
	if v, err := w.attempt(true); v != verdictRenew || err != nil {
		t.Fatalf("slow renewal: %v %v", v, err)
	}
	got := testMetrics.calls(name)
	want := []string{"off", "on", "slowpath"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("metric calls = %v, want %v", got, want)
	}
}
