package group

import (
	"context"
	"errors"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestTakeOverHoldsOffAtEachRunOutOfTheSameHolder: a member that does not
// own an election whose lease ran out holds off for the hold-off from when
// it found that lease run out, each time it does: a holder that crashes,
// comes back, leads the election again and crashes again is held off for
// again, not taken over at once because the first hold-off is long over.
func TestTakeOverHoldsOffAtEachRunOutOfTheSameHolder(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	g := sixShardMember(t, fake.NewClientset().CoordinationV1(), clk)
	memberLease := func(id string) *coordinationv1.Lease {
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: memberLeaseName("istiod", id), Labels: map[string]string{GroupLabel: "istiod"},
				ResourceVersion: clk.Now().String()},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(id), LeaseDurationSeconds: ptr.To[int32](8), RenewTime: &metav1.MicroTime{Time: clk.Now()}},
		}
	}
	g.members.replace([]coordinationv1.Lease{*memberLease("a"), *memberLease("b"), *memberLease("d")})
	// runOut shows l's lease held by d, last renewed at renewed, and asks
	// whether a may take it over now.
	runOut := func(l *rankedLock, renewed time.Time) error {
		l.saw(&rl.LeaderElectionRecord{HolderIdentity: "d", HolderKey: "default", RenewTime: metav1.NewTime(renewed)}, nil)
		return g.mayTakeOver(l, "d", "default")
	}

	// An election that b owns once d is gone.
	var l *rankedLock
	var first error
	renewed := clk.Now()
	clk.Step(testLease)
	for _, c := range g.candidates {
		lock := &rankedLock{candidate: c, group: g, LeaseLock: &rl.LeaseLock{LockConfig: rl.ResourceLockConfig{Identity: "a"}}}
		if err := runOut(lock, renewed); errors.Is(err, ErrHoldingOff) {
			l, first = lock, err
			break
		}
	}
	if l == nil {
		t.Fatal("a owns every election without d; want b to own some")
	}
	// The elector logs a failure at error level only when its words
	// change: a retry within one hold-off must say the same.
	clk.Step(testRetry / 2)
	if again := runOut(l, renewed); again == nil || again.Error() != first.Error() {
		t.Fatalf("a retry within the hold-off said %q, the first attempt %q; want the same words", again, first)
	}
	clk.Step(testRetry / 2)
	if err := runOut(l, renewed); err != nil {
		t.Fatalf("first crash of d, after the hold-off: %v, want a free to take %s over", err, l.candidate.name)
	}

	// d comes back, leads the election again, and crashes again.
	clk.Step(10 * testLease)
	g.members.saw(memberLease("b"))
	g.members.saw(memberLease("d"))
	renewed = clk.Now()
	clk.Step(testLease)
	if err := runOut(l, renewed); !errors.Is(err, ErrHoldingOff) {
		t.Fatalf("second crash of d, as its lease of %s runs out: %v, want ErrHoldingOff for the hold-off (%v) from now, not from the first crash",
			l.candidate.name, err, testRetry)
	}
	clk.Step(testRetry)
	if err := runOut(l, renewed); err != nil {
		t.Fatalf("second crash of d, after the hold-off: %v, want a free to take %s over", err, l.candidate.name)
	}
}

// TestTakeOverHoldsOffAfterAFirstLookFromTheSharedWatch: an election's
// candidate that takes its first look at the Lease from the shared watch of
// its namespace (rl.SharedReader), not from a read, knows the holder all
// the same: taking the lease over from it when it runs out is checked by
// the group, and a member that does not own the election holds off.
func TestTakeOverHoldsOffAfterAFirstLookFromTheSharedWatch(t *testing.T) {
	ctx := t.Context()
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	client := fakekube.New().CoordinationV1()
	g := sixShardMember(t, client, clk)
	memberLease := func(id string) coordinationv1.Lease {
		return coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: memberLeaseName("istiod", id), Labels: map[string]string{GroupLabel: "istiod"},
				ResourceVersion: clk.Now().String()},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(id), LeaseDurationSeconds: ptr.To[int32](8), RenewTime: &metav1.MicroTime{Time: clk.Now()}},
		}
	}
	g.members.replace([]coordinationv1.Lease{memberLease("a"), memberLease("b"), memberLease("d")})
	clk.Step(testLease)
	// An election that b owns once d is gone, held by d.
	var c *candidate
	for _, cand := range g.candidates {
		if g.assignment(clk.Now())[cand.name] == "b" {
			c = cand
			break
		}
	}
	if c == nil {
		t.Fatal("a owns every election without d; want b to own some")
	}
	held := &rl.LeaseLock{LeaseMeta: metaOf(testNamespace, c.name), Client: client, LockConfig: rl.ResourceLockConfig{Identity: "d", Key: "default"}}
	if err := held.Create(ctx, rl.LeaderElectionRecord{HolderIdentity: "d", HolderKey: "default", LeaseDurationSeconds: 8}); err != nil {
		t.Fatal(err)
	}
	// Another lock of the process keeps the shared watch running.
	w, err := held.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	lock := &rankedLock{candidate: c, group: g, LeaseLock: &rl.LeaseLock{
		LeaseMeta: metaOf(testNamespace, c.name), Client: client, LockConfig: rl.ResourceLockConfig{Identity: "a", Key: "default"}}}
	var shared rl.SharedReader = lock
	record, _, err, ok := shared.GetShared()
	if !ok || err != nil || record.HolderIdentity != "d" {
		t.Fatalf("first look from the shared watch: %+v, %v, %v; want d's record", record, err, ok)
	}
	err = lock.Update(ctx, rl.LeaderElectionRecord{HolderIdentity: "a", HolderKey: "default", LeaseDurationSeconds: 8})
	if !errors.Is(err, ErrHoldingOff) {
		t.Fatalf("taking %s over from d, after a first look from the shared watch: %v; want ErrHoldingOff, as b owns it", c.name, err)
	}
}

// sixShardMember is member "a", key "default", of group "istiod" with six
// elections whose callbacks do nothing, on client and clk.
func sixShardMember(t *testing.T, client coordinationv1client.LeasesGetter, clk *clocktesting.FakeClock) *member {
	t.Helper()
	config := Config{
		Name: "istiod", Namespace: testNamespace, Client: client,
		Identity: "a", Key: "default",
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry, Settle: testSettle,
		Clock: clk,
	}
	for _, name := range names("shard-", 6) {
		config.Elections = append(config.Elections, Election{Name: name, Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {},
		}})
	}
	g, err := newMember(config)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
