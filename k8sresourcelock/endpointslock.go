package k8sresourcelock

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// EndpointsLock keeps the record as JSON in the
// LeaderElectionRecordAnnotationKey annotation of an Endpoints object.
// Kubernetes deprecates v1 Endpoints (the API server answers with a warning);
// it is here for elections that already use it. Prefer LeaseLock.
type EndpointsLock struct {
	// EndpointsMeta names the Endpoints object (Namespace and Name).
	EndpointsMeta metav1.ObjectMeta
	// Client reads and writes the Endpoints object.
	Client corev1client.EndpointsGetter
	// LockConfig describes this candidate.
	LockConfig ResourceLockConfig

	ep *corev1.Endpoints
	// watchClient, if set, is used for watches instead of Client: a client
	// with a request timeout ends every watch after it.
	watchClient corev1client.EndpointsGetter
}

func (el *EndpointsLock) store() annotationStore[*corev1.Endpoints] {
	s := annotationStore[*corev1.Endpoints]{
		describe: "endpoints lock " + el.Describe(),
		kind:     "Endpoints",
		resource: "endpoints",
		meta:     el.EndpointsMeta,
		cache:    &el.ep,
		newObj:   func() *corev1.Endpoints { return &corev1.Endpoints{} },
	}
	if isNilValue(el.Client) {
		return s
	}
	api := el.Client.Endpoints(el.EndpointsMeta.Namespace)
	s.get = func(ctx context.Context) (*corev1.Endpoints, error) {
		return api.Get(ctx, el.EndpointsMeta.Name, metav1.GetOptions{})
	}
	s.create = func(ctx context.Context, ep *corev1.Endpoints) (*corev1.Endpoints, error) {
		return api.Create(ctx, ep, metav1.CreateOptions{})
	}
	s.update = func(ctx context.Context, ep *corev1.Endpoints) (*corev1.Endpoints, error) {
		return api.Update(ctx, ep, metav1.UpdateOptions{})
	}
	s.watch = api.Watch
	if el.watchClient != nil {
		s.watch = el.watchClient.Endpoints(el.EndpointsMeta.Namespace).Watch
	}
	return s
}

// Get reads the Endpoints object and decodes its record.
func (el *EndpointsLock) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	return el.store().Get(ctx)
}

// Create creates the Endpoints object holding ler.
func (el *EndpointsLock) Create(ctx context.Context, ler LeaderElectionRecord) error {
	return el.store().Create(ctx, ler)
}

// Update writes ler over the Endpoints object last read or written.
func (el *EndpointsLock) Update(ctx context.Context, ler LeaderElectionRecord) error {
	return el.store().Update(ctx, ler)
}

// Watch watches the Endpoints object; see Watcher.
func (el *EndpointsLock) Watch(ctx context.Context) (watch.Interface, error) {
	return el.store().Watch(ctx)
}

// PrepareWatch notes the state the Endpoints object's watch resumes from and returns
// what opens it; see WatchStarter.
func (el *EndpointsLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	return el.store().prepareWatch()
}

// Apply takes an event of Watch as the Endpoints object's latest state; see
// Watcher.
func (el *EndpointsLock) Apply(ev watch.Event) (*LeaderElectionRecord, []byte, error) {
	return el.store().Apply(ev)
}

// ResourceVersion returns the resourceVersion of the Endpoints object as last read or
// written, or "" before the first read or after one found it absent.
func (el *EndpointsLock) ResourceVersion() string {
	return el.store().resourceVersion()
}

// Validate reports a EndpointsLock without a client, namespace or name, or with a
// typed nil EventRecorder.
func (el *EndpointsLock) Validate() error {
	return validateMeta("endpoints", el.EndpointsMeta, el.Client, el.LockConfig)
}

// RecordEvent records event s about this candidate on the Endpoints object.
// It does nothing without an EventRecorder.
func (el *EndpointsLock) RecordEvent(s string) {
	el.store().RecordEvent(el.LockConfig.EventRecorder, el.LockConfig.Identity, s)
}

// Describe returns "namespace/name" of the Endpoints object.
func (el *EndpointsLock) Describe() string {
	return el.EndpointsMeta.Namespace + "/" + el.EndpointsMeta.Name
}

// Identity returns this candidate's identity.
func (el *EndpointsLock) Identity() string {
	return el.LockConfig.Identity
}

// Key returns this candidate's priority key.
func (el *EndpointsLock) Key() string {
	return el.LockConfig.Key
}
