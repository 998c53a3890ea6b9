package k8sresourcelock

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// annotated is an API object that can carry the record annotation: a
// *corev1.ConfigMap or a *corev1.Endpoints.
type annotated interface {
	comparable
	metav1.Object
	runtime.Object
}

// annotationStore is what a ConfigMap or Endpoints lock needs to keep its
// record in an annotation: how to reach its object, and where it caches the
// object last read or written (Update writes over that copy, so a concurrent
// change by someone else fails with a Conflict instead of being lost).
type annotationStore[T annotated] struct {
	describe string // e.g. "configmap lock ns/name", for errors
	kind     string // the object's Kind, for events
	meta     metav1.ObjectMeta
	cache    *T
	newObj   func() T
	resource string // the object's API resource, for errors
	get      func(context.Context) (T, error)
	watch    func(context.Context, metav1.ListOptions) (watch.Interface, error)
	create   func(context.Context, T) (T, error)
	update   func(context.Context, T) (T, error)
}

func (s annotationStore[T]) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	if s.get == nil {
		return nil, nil, fmt.Errorf("%s: Client must not be nil", s.describe)
	}
	obj, err := s.get(ctx)
	if apierrors.IsNotFound(err) {
		// Nothing is left to write over: the next write must be a Create.
		var none T
		*s.cache = none
	}
	if err != nil {
		return nil, nil, err
	}
	*s.cache = obj
	return s.decode(obj)
}

// decode reads the record out of obj. An object without the annotation holds
// the empty record: nobody leads, and the first candidate to write it takes
// the lock. An annotation that is not a record gives an error wrapping
// ErrInvalidRecord along with its bytes, so that the elector can tell when it
// changes.
func (s annotationStore[T]) decode(obj T) (*LeaderElectionRecord, []byte, error) {
	raw, found := obj.GetAnnotations()[LeaderElectionRecordAnnotationKey]
	var record LeaderElectionRecord
	if !found {
		getHandoff(obj.GetAnnotations(), &record)
		return &record, nil, nil
	}
	if err := json.Unmarshal([]byte(raw), &record); err != nil {
		return nil, []byte(raw), fmt.Errorf("%s: annotation %s: %w: %w", s.describe, LeaderElectionRecordAnnotationKey, ErrInvalidRecord, err)
	}
	getHandoff(obj.GetAnnotations(), &record)
	return &record, []byte(raw), nil
}

func (s annotationStore[T]) Create(ctx context.Context, ler LeaderElectionRecord) error {
	if s.create == nil {
		return fmt.Errorf("%s: Client must not be nil", s.describe)
	}
	obj := s.newObj()
	obj.SetNamespace(s.meta.Namespace)
	obj.SetName(s.meta.Name)
	if err := s.encode(obj, &ler); err != nil {
		return err
	}
	created, err := s.create(ctx, obj)
	if err != nil {
		return err
	}
	*s.cache = created
	return nil
}

func (s annotationStore[T]) Update(ctx context.Context, ler LeaderElectionRecord) error {
	var none T
	cached := *s.cache
	if cached == none || s.update == nil {
		return fmt.Errorf("%s: not initialized, call Get or Create first", s.describe)
	}
	// Change a copy, so that a failed write leaves the cache as the server has it.
	obj := cached.DeepCopyObject().(T)
	if err := s.encode(obj, &ler); err != nil {
		return err
	}
	updated, err := s.update(ctx, obj)
	if err != nil {
		return err
	}
	*s.cache = updated
	return nil
}

// encode writes ler into obj's record annotation, leaving its other
// annotations as they are.
func (s annotationStore[T]) encode(obj T, ler *LeaderElectionRecord) error {
	encoded, err := encodeRecord(ler)
	if err != nil {
		return fmt.Errorf("%s: encode leader record: %w", s.describe, err)
	}
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[LeaderElectionRecordAnnotationKey] = string(encoded)
	obj.SetAnnotations(putHandoff(annotations, ler))
	return nil
}

// RecordEvent files event s about identity against the object last read, or,
// before the first read, against the object the lock was configured with.
func (s annotationStore[T]) RecordEvent(recorder EventRecorder, identity, event string) {
	if isNilValue(recorder) {
		return
	}
	var none T
	subject := s.newObj()
	if cached := *s.cache; cached != none {
		subject = cached.DeepCopyObject().(T)
	} else {
		subject.SetNamespace(s.meta.Namespace)
		subject.SetName(s.meta.Name)
	}
	subject.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(s.kind))
	recorder.Eventf(subject, corev1.EventTypeNormal, "LeaderElection", "%s %s", identity, event)
}

// resourceVersion returns the resourceVersion of the object last read or
// written, or "" if there is none.
func (s annotationStore[T]) resourceVersion() string {
	var none T
	if cached := *s.cache; cached != none {
		return cached.GetResourceVersion()
	}
	return ""
}

// Watch watches the object; see Watcher.
func (s annotationStore[T]) Watch(ctx context.Context) (watch.Interface, error) {
	return s.prepareWatch()(ctx)
}

// prepareWatch notes the state the object's watch resumes from and returns
// what opens it; see WatchStarter.
func (s annotationStore[T]) prepareWatch() func(ctx context.Context) (watch.Interface, error) {
	if s.watch == nil {
		err := fmt.Errorf("%s: Client must not be nil", s.describe)
		return func(context.Context) (watch.Interface, error) { return nil, err }
	}
	open, meta, rv := s.watch, s.meta, s.resourceVersion()
	return func(ctx context.Context) (watch.Interface, error) {
		w, err := open(ctx, watchOptions(meta.Name, rv))
		if err != nil {
			return nil, err
		}
		return onlyNamed(w, meta.Namespace, meta.Name), nil
	}
}

// Apply takes an event of Watch as the object's latest state; see Watcher.
func (s annotationStore[T]) Apply(ev watch.Event) (*LeaderElectionRecord, []byte, error) {
	obj, err := objectOf[T](ev, s.meta.Namespace, s.meta.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.describe, err)
	}
	var none T
	if ev.Type == watch.Deleted {
		*s.cache = none
		return nil, nil, apierrors.NewNotFound(corev1.Resource(s.resource), s.meta.Name)
	}
	*s.cache = obj
	return s.decode(obj)
}
