package k8sresourcelock

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// ConfigMapLock keeps the record as JSON in the
// LeaderElectionRecordAnnotationKey annotation of a ConfigMap.
type ConfigMapLock struct {
	// ConfigMapMeta names the ConfigMap (Namespace and Name).
	ConfigMapMeta metav1.ObjectMeta
	// Client reads and writes the ConfigMap.
	Client corev1client.ConfigMapsGetter
	// LockConfig describes this candidate.
	LockConfig ResourceLockConfig

	cm *corev1.ConfigMap
	// watchClient, if set, is used for watches instead of Client: a client
	// with a request timeout ends every watch after it.
	watchClient corev1client.ConfigMapsGetter
}

func (cml *ConfigMapLock) store() annotationStore[*corev1.ConfigMap] {
	s := annotationStore[*corev1.ConfigMap]{
		describe: "configmap lock " + cml.Describe(),
		kind:     "ConfigMap",
		resource: "configmaps",
		meta:     cml.ConfigMapMeta,
		cache:    &cml.cm,
		newObj:   func() *corev1.ConfigMap { return &corev1.ConfigMap{} },
	}
	if isNilValue(cml.Client) {
		return s
	}
	api := cml.Client.ConfigMaps(cml.ConfigMapMeta.Namespace)
	s.get = func(ctx context.Context) (*corev1.ConfigMap, error) {
		return api.Get(ctx, cml.ConfigMapMeta.Name, metav1.GetOptions{})
	}
	s.create = func(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		return api.Create(ctx, cm, metav1.CreateOptions{})
	}
	s.update = func(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		return api.Update(ctx, cm, metav1.UpdateOptions{})
	}
	s.watch = api.Watch
	if cml.watchClient != nil {
		s.watch = cml.watchClient.ConfigMaps(cml.ConfigMapMeta.Namespace).Watch
	}
	return s
}

// Get reads the ConfigMap and decodes its record.
func (cml *ConfigMapLock) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	return cml.store().Get(ctx)
}

// Create creates the ConfigMap holding ler.
func (cml *ConfigMapLock) Create(ctx context.Context, ler LeaderElectionRecord) error {
	return cml.store().Create(ctx, ler)
}

// Update writes ler over the ConfigMap last read or written.
func (cml *ConfigMapLock) Update(ctx context.Context, ler LeaderElectionRecord) error {
	return cml.store().Update(ctx, ler)
}

// Watch watches the ConfigMap object; see Watcher.
func (cml *ConfigMapLock) Watch(ctx context.Context) (watch.Interface, error) {
	return cml.store().Watch(ctx)
}

// PrepareWatch notes the state the ConfigMap object's watch resumes from and returns
// what opens it; see WatchStarter.
func (cml *ConfigMapLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	return cml.store().prepareWatch()
}

// Apply takes an event of Watch as the ConfigMap object's latest state; see
// Watcher.
func (cml *ConfigMapLock) Apply(ev watch.Event) (*LeaderElectionRecord, []byte, error) {
	return cml.store().Apply(ev)
}

// ResourceVersion returns the resourceVersion of the ConfigMap as last read or
// written, or "" before the first read or after one found it absent.
func (cml *ConfigMapLock) ResourceVersion() string {
	return cml.store().resourceVersion()
}

// Validate reports a ConfigMapLock without a client, namespace or name, or with a
// typed nil EventRecorder.
func (cml *ConfigMapLock) Validate() error {
	return validateMeta("configmap", cml.ConfigMapMeta, cml.Client, cml.LockConfig)
}

// RecordEvent records event s about this candidate on the ConfigMap. It does
// nothing without an EventRecorder.
func (cml *ConfigMapLock) RecordEvent(s string) {
	cml.store().RecordEvent(cml.LockConfig.EventRecorder, cml.LockConfig.Identity, s)
}

// Describe returns "namespace/name" of the ConfigMap.
func (cml *ConfigMapLock) Describe() string {
	return cml.ConfigMapMeta.Namespace + "/" + cml.ConfigMapMeta.Name
}

// Identity returns this candidate's identity.
func (cml *ConfigMapLock) Identity() string {
	return cml.LockConfig.Identity
}

// Key returns this candidate's priority key.
func (cml *ConfigMapLock) Key() string {
	return cml.LockConfig.Key
}
