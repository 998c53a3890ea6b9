package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
