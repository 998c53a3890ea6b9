package hub

import (
	"context"
	"errors"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

const ns = "istio-system"

// leaseRecord is the part of a leader record these tests write.
type leaseRecord struct {
	holder      string
	transitions int32
}

func record(holder, _ string, transitions int) leaseRecord {
	return leaseRecord{holder: holder, transitions: int32(transitions)}
}

type lockConfig struct{ Identity string }

// testLock reads, writes and watches one Lease as k8sresourcelock's Lease
// lock does: through the hub, or alone where no hub can serve it.
type testLock struct {
	LeaseMeta  metav1.ObjectMeta
	Client     coordinationv1client.LeasesGetter
	LockConfig lockConfig
	lease      *coordinationv1.Lease
}

func (l *testLock) leases() coordinationv1client.LeaseInterface {
	return l.Client.Leases(l.LeaseMeta.Namespace)
}

func (l *testLock) Get(ctx context.Context) (*coordinationv1.Lease, []byte, error) {
	lease, err := l.leases().Get(ctx, l.LeaseMeta.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l.lease = nil
	}
	if err != nil {
		return nil, nil, err
	}
	l.lease = lease
	return lease, nil, nil
}

func (l *testLock) apply(lease *coordinationv1.Lease, r leaseRecord) {
	lease.Spec.HolderIdentity = &r.holder
	lease.Spec.LeaseTransitions = &r.transitions
}

func (l *testLock) Create(ctx context.Context, r leaseRecord) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.LeaseMeta.Namespace, Name: l.LeaseMeta.Name}}
	l.apply(lease, r)
	created, err := l.leases().Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.lease = created
	return nil
}

func (l *testLock) Update(ctx context.Context, r leaseRecord) error {
	if l.lease == nil {
		return errors.New("update before a read")
	}
	lease := l.lease.DeepCopy()
	l.apply(lease, r)
	updated, err := l.leases().Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.lease = updated
	return nil
}

func (l *testLock) ResourceVersion() string {
	if l.lease == nil {
		return ""
	}
	return l.lease.ResourceVersion
}

func (l *testLock) Describe() string { return l.LeaseMeta.Namespace + "/" + l.LeaseMeta.Name }

func (l *testLock) Identity() string { return l.LockConfig.Identity }

func (l *testLock) Watch(ctx context.Context) (watch.Interface, error) {
	leases := l.leases()
	src := Source{
		List: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list, err := leases.List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return list, nil
		},
		Watch:          leases.Watch,
		TimeoutSeconds: 300,
	}
	key := Key{Client: l.Client, Namespace: l.LeaseMeta.Namespace, Resource: "leases"}
	w, err := Subscribe(ctx, key, l.LeaseMeta.Name, SinceVersion(l.lease != nil, l.ResourceVersion()), src)
	if !errors.Is(err, ErrNoHub) {
		return w, err
	}
	return leases.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + l.LeaseMeta.Name, ResourceVersion: l.ResourceVersion()})
}
