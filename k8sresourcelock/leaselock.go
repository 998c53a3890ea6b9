package k8sresourcelock

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock/internal/hub"
)

// LeaseHolderKey is the annotation on a Lease that carries the holder's key
// (LeaderElectionRecord.HolderKey), which a LeaseSpec has no field for.
const LeaseHolderKey = "leader.istio.io/holder-key"

// LeaseLock keeps the record in the spec of a coordination.k8s.io/v1 Lease and
// the holder's key in its LeaseHolderKey annotation.
type LeaseLock struct {
	// LeaseMeta names the Lease (Namespace and Name).
	LeaseMeta metav1.ObjectMeta
	// Client reads and writes the Lease.
	Client coordinationv1client.LeasesGetter
	// LockConfig describes this candidate.
	LockConfig ResourceLockConfig
	// Labels, when set, are written to the Lease each time this candidate
	// writes it; labels not named here are left as they are.
	Labels map[string]string
	// OwnerReferences, when set, replace the Lease's owner references each
	// time this candidate writes it, so that the garbage collector can
	// remove the Lease with its owner.
	OwnerReferences []metav1.OwnerReference

	lease *coordinationv1.Lease
	// watchClient, if set, is used for watches instead of Client: a client
	// with a request timeout ends every watch after it.
	watchClient coordinationv1client.LeasesGetter
	// gateKey, if set, names the gate the requests pass instead of
	// Client: the locks NewFromKubeconfig builds from one kubeconfig have
	// a client each but share client-go's connection.
	gateKey any
}

// Get reads the Lease and converts it to a record. Missing spec fields read as
// zero values.
func (ll *LeaseLock) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	if isNilValue(ll.Client) {
		return nil, nil, fmt.Errorf("lease lock %s: Client must not be nil", ll.Describe())
	}
	leave, err := sendThrough(ctx, ll.Client, ll.gateKey, ll.Describe())
	if err != nil {
		return nil, nil, err
	}
	defer leave()
	lease, err := ll.Client.Leases(ll.LeaseMeta.Namespace).Get(ctx, ll.LeaseMeta.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Nothing is left to write over: the next write must be a Create.
		ll.lease = nil
	}
	if err != nil {
		return nil, nil, err
	}
	ll.lease = lease
	return ll.decode(lease)
}

// decode reads the record out of lease, with the bytes an elector compares.
func (ll *LeaseLock) decode(lease *coordinationv1.Lease) (*LeaderElectionRecord, []byte, error) {
	record := LeaseToLeaderElectionRecord(lease)
	// A record always encodes: it holds only strings, numbers and times.
	raw, err := encodeRecord(record)
	if err != nil {
		return nil, nil, fmt.Errorf("lease lock %s: encode leader record: %w", ll.Describe(), err)
	}
	return record, raw, nil
}

// Watch watches the Lease; see Watcher.
func (ll *LeaseLock) Watch(ctx context.Context) (watch.Interface, error) {
	return ll.PrepareWatch()(ctx)
}

// PrepareWatch notes the state the Lease's watch resumes from and returns
// what opens it; see WatchStarter.
func (ll *LeaseLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	if isNilValue(ll.Client) {
		err := fmt.Errorf("lease lock %s: Client must not be nil", ll.Describe())
		return func(context.Context) (watch.Interface, error) { return nil, err }
	}
	client := ll.watchingClient()
	ns, name := ll.LeaseMeta.Namespace, ll.LeaseMeta.Name
	rv, since := ll.ResourceVersion(), hub.SinceVersion(ll.lease != nil, ll.ResourceVersion())
	return func(ctx context.Context) (watch.Interface, error) {
		leases := client.Leases(ns)
		src := hub.Source{
			List: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				list, err := leases.List(ctx, opts)
				if err != nil {
					return nil, err
				}
				return list, nil
			},
			Watch:          leases.Watch,
			TimeoutSeconds: WatchTimeoutSeconds,
		}
		w, err := hub.Subscribe(ctx, leaseHub(client, ns), name, since, src)
		if !errors.Is(err, hub.ErrNoHub) {
			return w, err
		}
		if w, err = leases.Watch(ctx, watchOptions(name, rv)); err != nil {
			return nil, err
		}
		return onlyNamed(w, ns, name), nil
	}
}

// watchingClient is the client the Lease's watch reads through.
func (ll *LeaseLock) watchingClient() coordinationv1client.LeasesGetter {
	if ll.watchClient != nil {
		return ll.watchClient
	}
	return ll.Client
}

// leaseHub names the shared watch of the Leases of namespace ns read
// through client.
func leaseHub(client coordinationv1client.LeasesGetter, ns string) hub.Key {
	return hub.Key{Client: client, Namespace: ns, Resource: "leases"}
}

// MayShare reports whether the Lease's watch may join its namespace's
// shared watch; see SharedReader.
func (ll *LeaseLock) MayShare() bool {
	return !isNilValue(ll.Client) && hub.MaySubscribe(leaseHub(ll.watchingClient(), ll.LeaseMeta.Namespace))
}

// GetShared takes the Lease's state from the process's shared watch of its
// namespace, if one runs; see SharedReader.
func (ll *LeaseLock) GetShared() (*LeaderElectionRecord, []byte, error, bool) {
	if isNilValue(ll.Client) {
		return nil, nil, nil, false
	}
	ev, ok := hub.Peek(leaseHub(ll.watchingClient(), ll.LeaseMeta.Namespace), ll.LeaseMeta.Name)
	if !ok {
		return nil, nil, nil, false
	}
	if ev.Object == nil {
		ll.lease = nil
		return nil, nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), ll.LeaseMeta.Name), true
	}
	if lease, ok := ev.Object.(*coordinationv1.Lease); !ok || !orderedVersion(lease.ResourceVersion) {
		// A state without a version a watch can resume after (a fake
		// clientset's) is not one to take as a read.
		return nil, nil, nil, false
	}
	record, raw, err := ll.Apply(ev)
	if err != nil {
		// Not a Lease of this name: the shared watch cannot tell.
		return nil, nil, nil, false
	}
	return record, raw, nil, true
}

// orderedVersion reports whether rv is a resourceVersion that orders the
// object's states: a positive number, as an API server gives.
func orderedVersion(rv string) bool {
	n, err := strconv.ParseUint(rv, 10, 64)
	return err == nil && n > 0
}

// Apply takes an event of Watch as the Lease's latest state; see Watcher.
func (ll *LeaseLock) Apply(ev watch.Event) (*LeaderElectionRecord, []byte, error) {
	lease, err := objectOf[*coordinationv1.Lease](ev, ll.LeaseMeta.Namespace, ll.LeaseMeta.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("lease lock %s: %w", ll.Describe(), err)
	}
	if ev.Type == watch.Deleted {
		ll.lease = nil
		return nil, nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), ll.LeaseMeta.Name)
	}
	ll.lease = lease
	return ll.decode(lease)
}

// Create creates the Lease holding ler.
func (ll *LeaseLock) Create(ctx context.Context, ler LeaderElectionRecord) error {
	if isNilValue(ll.Client) {
		return fmt.Errorf("lease lock %s: Client must not be nil", ll.Describe())
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Namespace: ll.LeaseMeta.Namespace,
		Name:      ll.LeaseMeta.Name,
	}}
	ll.apply(lease, &ler)
	leave, err := sendThrough(ctx, ll.Client, ll.gateKey, ll.Describe())
	if err != nil {
		return err
	}
	defer leave()
	created, err := ll.Client.Leases(ll.LeaseMeta.Namespace).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	ll.lease = created
	return nil
}

// Update writes ler over the Lease last read or written.
func (ll *LeaseLock) Update(ctx context.Context, ler LeaderElectionRecord) error {
	if ll.lease == nil || isNilValue(ll.Client) {
		return fmt.Errorf("lease lock %s: not initialized, call Get or Create first", ll.Describe())
	}
	// Change a copy, so that a failed write leaves the cache as the server has it.
	lease := ll.lease.DeepCopy()
	ll.apply(lease, &ler)
	leave, err := sendThrough(ctx, ll.Client, ll.gateKey, ll.Describe())
	if err != nil {
		return err
	}
	defer leave()
	updated, err := ll.Client.Leases(ll.LeaseMeta.Namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	ll.lease = updated
	return nil
}

// apply puts ler, our labels and our owner references on lease.
func (ll *LeaseLock) apply(lease *coordinationv1.Lease, ler *LeaderElectionRecord) {
	lease.Spec = LeaderElectionRecordToLeaseSpec(ler)
	lease.Annotations = putHandoff(lease.Annotations, ler)
	if ler.HolderKey != "" {
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[LeaseHolderKey] = ler.HolderKey
	} else {
		delete(lease.Annotations, LeaseHolderKey)
	}
	if len(ll.Labels) > 0 {
		if lease.Labels == nil {
			lease.Labels = map[string]string{}
		}
		maps.Copy(lease.Labels, ll.Labels)
	}
	if len(ll.OwnerReferences) > 0 {
		lease.OwnerReferences = ll.OwnerReferences
	}
}

// ResourceVersion returns the resourceVersion of the Lease as last read or
// written, or "" before the first read or after one found it absent.
func (ll *LeaseLock) ResourceVersion() string {
	if ll.lease == nil {
		return ""
	}
	return ll.lease.ResourceVersion
}

var (
	_ TermLock     = (*LeaseLock)(nil)
	_ SharedReader = (*LeaseLock)(nil)
)

// TermObject returns the Lease's namespace, name and UID; see TermLock.
func (ll *LeaseLock) TermObject() (namespace, name string, uid types.UID) {
	if ll.lease != nil {
		uid = ll.lease.UID
	}
	return ll.LeaseMeta.Namespace, ll.LeaseMeta.Name, uid
}

// Validate reports a LeaseLock without a client, namespace or name, or with a
// typed nil EventRecorder.
func (ll *LeaseLock) Validate() error {
	return validateMeta("lease", ll.LeaseMeta, ll.Client, ll.LockConfig)
}

// RecordEvent records event s about this candidate on the Lease. It does
// nothing without an EventRecorder.
func (ll *LeaseLock) RecordEvent(s string) {
	if isNilValue(ll.LockConfig.EventRecorder) {
		return
	}
	subject := &coordinationv1.Lease{ObjectMeta: ll.LeaseMeta}
	if ll.lease != nil {
		subject.ObjectMeta = ll.lease.ObjectMeta
	}
	subject.Kind = "Lease"
	subject.APIVersion = coordinationv1.SchemeGroupVersion.String()
	ll.LockConfig.EventRecorder.Eventf(subject, corev1.EventTypeNormal, "LeaderElection", "%s %s", ll.LockConfig.Identity, s)
}

// Describe returns "namespace/name" of the Lease.
func (ll *LeaseLock) Describe() string {
	return ll.LeaseMeta.Namespace + "/" + ll.LeaseMeta.Name
}

// Identity returns this candidate's identity.
func (ll *LeaseLock) Identity() string {
	return ll.LockConfig.Identity
}

// Key returns this candidate's priority key.
func (ll *LeaseLock) Key() string {
	return ll.LockConfig.Key
}

// LeaseToLeaderElectionRecord reads the record out of a Lease: its spec, the
// holder's key from the LeaseHolderKey annotation, and the handoff offer and
// request from theirs. Missing fields, or a
// nil Lease, read as zero values.
func LeaseToLeaderElectionRecord(l *coordinationv1.Lease) *LeaderElectionRecord {
	if l == nil {
		return &LeaderElectionRecord{}
	}
	r := LeaseSpecToLeaderElectionRecord(&l.Spec)
	r.HolderKey = l.Annotations[LeaseHolderKey]
	getHandoff(l.Annotations, r)
	return r
}

// LeaseSpecToLeaderElectionRecord reads the record out of a LeaseSpec, as
// client-go's function of that name does. A spec has no key: use
// LeaseToLeaderElectionRecord to read one. Missing fields, or a nil spec,
// read as zero values.
func LeaseSpecToLeaderElectionRecord(spec *coordinationv1.LeaseSpec) *LeaderElectionRecord {
	var r LeaderElectionRecord
	if spec == nil {
		return &r
	}
	if spec.HolderIdentity != nil {
		r.HolderIdentity = *spec.HolderIdentity
	}
	if spec.LeaseDurationSeconds != nil {
		r.LeaseDurationSeconds = int(*spec.LeaseDurationSeconds)
	}
	if spec.LeaseTransitions != nil {
		r.LeaderTransitions = int(*spec.LeaseTransitions)
	}
	if spec.AcquireTime != nil {
		r.AcquireTime = metav1.Time{Time: spec.AcquireTime.Time}
	}
	if spec.RenewTime != nil {
		r.RenewTime = metav1.Time{Time: spec.RenewTime.Time}
	}
	if spec.Strategy != nil {
		r.Strategy = *spec.Strategy
	}
	if spec.PreferredHolder != nil {
		r.PreferredHolder = *spec.PreferredHolder
	}
	return &r
}

// LeaderElectionRecordToLeaseSpec converts a record to a LeaseSpec. The key
// has no place in a spec: LeaseLock writes it to the LeaseHolderKey
// annotation. A nil record gives an empty spec.
func LeaderElectionRecordToLeaseSpec(ler *LeaderElectionRecord) coordinationv1.LeaseSpec {
	if ler == nil {
		return coordinationv1.LeaseSpec{}
	}
	holder := ler.HolderIdentity
	duration := clampInt32(ler.LeaseDurationSeconds)
	transitions := clampInt32(ler.LeaderTransitions)
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       &holder,
		LeaseDurationSeconds: &duration,
		AcquireTime:          &metav1.MicroTime{Time: ler.AcquireTime.Time},
		RenewTime:            &metav1.MicroTime{Time: ler.RenewTime.Time},
		LeaseTransitions:     &transitions,
	}
	if ler.Strategy != "" {
		strategy := ler.Strategy
		spec.Strategy = &strategy
	}
	if ler.PreferredHolder != "" {
		preferred := ler.PreferredHolder
		spec.PreferredHolder = &preferred
	}
	return spec
}

// clampInt32 keeps an out-of-range count from wrapping around into a
// negative one when it is stored in an int32 spec field.
func clampInt32(v int) int32 {
	const lo, hi = -1 << 31, 1<<31 - 1
	return int32(min(max(v, lo), hi))
}
