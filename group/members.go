package group

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// GroupLabel labels each member's Lease with the name of its group, so that
// the members of a group list and watch each other's Leases, and nothing
// else.
const GroupLabel = "k8sleaderelection.io/group"

// memberLeaseName is the name of the Lease a member announces itself with:
// the group's name, ".member.", and the identity, or a hash of it where the
// identity cannot be part of a name. The dot keeps it apart from election
// names, which are usually written with dashes.
func memberLeaseName(group, identity string) string {
	name := group + ".member." + identity
	if len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	return fmt.Sprintf("%s.member.%016x", group, hash(identity))
}

// membership announces this member with a Lease of its own, renewed every
// half of its duration, and follows the other members' Leases by one
// label-selected list and watch, as an informer does. A member is alive
// while its Lease has changed within the duration it wrote, as measured by
// our clock from when we saw the change: no timestamp in a Lease is compared
// with our time.
type membership struct {
	client     coordinationv1client.LeasesGetter
	namespace  string
	group      string
	identity   string
	key        string
	leaseName  string
	duration   time.Duration
	retry      time.Duration
	clock      clock.WithDelayedExecution
	changed    func()
	selector   string
	ownedLease *coordinationv1.Lease

	mu   sync.Mutex
	seen map[string]memberSeen // by Lease name
	// ranOutAt holds, by identity, when we found a lease of one of its
	// elections run out unrenewed: it is gone for the assignment until we
	// see its member Lease change after that.
	ranOutAt map[string]time.Time
	// sighted is set from a successful list of the members until their
	// list or watch fails: without it our view may be missing members.
	sighted bool
	// blind, in tests, names a member whose Lease we do not see, so that
	// views disagree.
	blind string
}

// memberSeen is a member's Lease as we last saw it, and when we saw it
// change.
type memberSeen struct {
	Member
	version string
	renew   time.Time
	lease   time.Duration
	since   time.Time
}

func newMembership(c *Config, clk clock.WithDelayedExecution, changed func()) *membership {
	return &membership{
		client:    c.Client,
		namespace: c.Namespace,
		group:     c.Name,
		identity:  c.Identity,
		key:       c.Key,
		leaseName: memberLeaseName(c.Name, c.Identity),
		duration:  c.MemberLeaseDuration,
		retry:     c.RetryPeriod,
		clock:     clk,
		changed:   changed,
		selector:  labels.Set{GroupLabel: c.Name}.String(),
		seen:      map[string]memberSeen{},
		ranOutAt:  map[string]time.Time{},
	}
}

// alive returns the members whose Lease is alive at now, other than us, and
// when the first of them runs out (zero if none).
func (m *membership) alive(now time.Time) (members []Member, next time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.seen {
		if s.Identity == m.identity {
			continue
		}
		end := s.since.Add(s.lease)
		if !now.Before(end) {
			continue
		}
		if at, ok := m.ranOutAt[s.Identity]; ok && !s.since.After(at) {
			continue
		}
		members = append(members, s.Member)
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return members, next
}

// ranOut notes that a lease of an election held by identity ran out
// unrenewed at now: a member that stopped renewing one lease has most
// likely stopped renewing all (it crashed, or lost the API server), and
// treating it as gone at once, rather than when its member Lease runs out,
// lets its elections go straight to the owners the assignment without it
// names. It comes back as soon as its member Lease is seen to change.
func (m *membership) ranOut(identity string, now time.Time) {
	m.mu.Lock()
	_, known := m.ranOutAt[identity]
	if !known {
		m.ranOutAt[identity] = now
	}
	m.mu.Unlock()
	if !known {
		m.changed()
	}
}

// seeing reports whether our view of the members is whole: they have been
// listed, and their watch has not failed since.
func (m *membership) seeing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sighted
}

// announce writes our Lease now and every half of its duration until ctx
// is done, and after a failure every RetryPeriod.
func (m *membership) announce(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for {
		wait := m.duration / 2
		if err := m.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			logger.Error(err, "Could not announce this member of the group", "group", m.group, "lease", m.leaseName)
			wait = m.retry
		}
		select {
		case <-ctx.Done():
			return
		case <-m.clock.After(wait):
		}
	}
}

// renew writes our Lease once: a create the first time, an update over the
// state we last wrote after that, read again after a conflict.
func (m *membership) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.retry)
	defer cancel()
	leases := m.client.Leases(m.namespace)
	now := metav1.NewMicroTime(m.clock.Now())
	seconds := int32(min(durations.WholeSeconds(m.duration), 1<<31-1))
	if m.ownedLease == nil {
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   m.namespace,
				Name:        m.leaseName,
				Labels:      map[string]string{GroupLabel: m.group},
				Annotations: map[string]string{rl.LeaseHolderKey: m.key},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &m.identity,
				LeaseDurationSeconds: &seconds,
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}
		created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
		if err == nil {
			m.ownedLease = created
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create member lease %s/%s: %w", m.namespace, m.leaseName, err)
		}
		// We restarted: our Lease is still there.
		if m.ownedLease, err = leases.Get(ctx, m.leaseName, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("read member lease %s/%s: %w", m.namespace, m.leaseName, err)
		}
	}
	lease := m.ownedLease.DeepCopy()
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Labels[GroupLabel] = m.group
	lease.Annotations[rl.LeaseHolderKey] = m.key
	lease.Spec.HolderIdentity = &m.identity
	lease.Spec.LeaseDurationSeconds = &seconds
	lease.Spec.RenewTime = &now
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		// Read again next time: it was changed or deleted under us.
		m.ownedLease = nil
		return fmt.Errorf("renew member lease %s/%s: %w", m.namespace, m.leaseName, err)
	}
	m.ownedLease = updated
	return nil
}

// withdraw deletes our Lease, so that the others drop us at once rather
// than when it runs out. ctx is done by then: it has RetryPeriod of its own.
func (m *membership) withdraw(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.retry)
	defer cancel()
	err := m.client.Leases(m.namespace).Delete(ctx, m.leaseName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		klog.FromContext(ctx).Error(err, "Could not delete our member lease; the others drop us when it runs out",
			"group", m.group, "lease", m.leaseName)
	}
}

// follow lists the members' Leases and watches them until ctx is done,
// listing again after a watch ends, and after a failure every RetryPeriod.
func (m *membership) follow(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for ctx.Err() == nil {
		err := m.listAndWatch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			continue
		}
		m.mu.Lock()
		m.sighted = false
		m.mu.Unlock()
		m.changed()
		logger.Error(err, "Lost sight of the group's members; listing again", "group", m.group, "after", m.retry)
		select {
		case <-ctx.Done():
			return
		case <-m.clock.After(m.retry):
		}
	}
}

// listAndWatch watches the members' Leases, then lists them, then applies
// the watch's events until it ends: nil if the API server closed it, the
// error otherwise. The watch starts first, from no resourceVersion, so that
// nothing written between the list and the watch is missed, even by a
// server that does not replay from a version (client-go's fake does not);
// the events that the list already shows only renew what it showed.
func (m *membership) listAndWatch(ctx context.Context) error {
	leases := m.client.Leases(m.namespace)
	timeout := int64(rl.WatchTimeoutSeconds)
	w, err := leases.Watch(ctx, metav1.ListOptions{
		LabelSelector:       m.selector,
		AllowWatchBookmarks: true,
		TimeoutSeconds:      &timeout,
	})
	if err != nil {
		return fmt.Errorf("watch member leases in %s with %s: %w", m.namespace, m.selector, err)
	}
	defer w.Stop()
	listCtx, cancel := context.WithTimeout(ctx, m.retry)
	list, err := leases.List(listCtx, metav1.ListOptions{LabelSelector: m.selector})
	cancel()
	if err != nil {
		return fmt.Errorf("list member leases in %s with %s: %w", m.namespace, m.selector, err)
	}
	m.replace(list.Items)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			if ev.Type == watch.Error {
				return fmt.Errorf("watch member leases in %s: %w", m.namespace, apierrors.FromObject(ev.Object))
			}
			lease, ok := ev.Object.(*coordinationv1.Lease)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				m.forget(lease.Name)
			} else if ev.Type != watch.Bookmark {
				m.saw(lease)
			}
		}
	}
}

// replace takes a list as the whole set of members' Leases.
func (m *membership) replace(items []coordinationv1.Lease) {
	listed := map[string]bool{}
	for i := range items {
		listed[items[i].Name] = true
		m.saw(&items[i])
	}
	m.mu.Lock()
	m.sighted = true
	for name := range m.seen {
		if !listed[name] {
			delete(m.seen, name)
		}
	}
	m.mu.Unlock()
	m.changed()
}

// saw takes in a state of a member's Lease. A watch may deliver Leases the
// selector does not match (client-go's fake applies none), so the label is
// checked here.
func (m *membership) saw(lease *coordinationv1.Lease) {
	if lease.Namespace != m.namespace || lease.Labels[GroupLabel] != m.group || lease.Spec.HolderIdentity == nil {
		m.forget(lease.Name)
		return
	}
	var renew time.Time
	if lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	d := m.duration
	if s := lease.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
		d = durations.Seconds(int(*s))
	}
	m.mu.Lock()
	if m.blind != "" && m.blind == *lease.Spec.HolderIdentity {
		m.mu.Unlock()
		return
	}
	old, known := m.seen[lease.Name]
	s := memberSeen{
		Member:  Member{Identity: *lease.Spec.HolderIdentity, Key: lease.Annotations[rl.LeaseHolderKey]},
		version: lease.ResourceVersion,
		renew:   renew,
		lease:   d,
		since:   m.clock.Now(),
	}
	// The same state delivered again (a list after a watch, a fake that
	// replays) is no renewal.
	if known && old.version == s.version && old.renew.Equal(s.renew) && old.Member == s.Member {
		s.since = old.since
	}
	m.seen[lease.Name] = s
	back := false
	if at, ok := m.ranOutAt[s.Identity]; ok && s.since.After(at) {
		delete(m.ranOutAt, s.Identity)
		back = true
	}
	m.mu.Unlock()
	if !known || old.Member != s.Member || s.since != old.since || back {
		m.changed()
	}
}

// forget drops a member whose Lease is gone.
func (m *membership) forget(name string) {
	m.mu.Lock()
	_, known := m.seen[name]
	delete(m.seen, name)
	m.mu.Unlock()
	if known {
		m.changed()
	}
}

func metaOf(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
