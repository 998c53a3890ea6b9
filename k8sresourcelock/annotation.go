package k8sresourcelock

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	get      func(context.Context) (T, error)
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
		return &record, nil, nil
	}
	if err := json.Unmarshal([]byte(raw), &record); err != nil {
		return nil, []byte(raw), fmt.Errorf("%s: annotation %s: %w: %w", s.describe, LeaderElectionRecordAnnotationKey, ErrInvalidRecord, err)
	}
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
	obj.SetAnnotations(annotations)
	return nil
}

// RecordEvent files event s about identity against the object last read, or,
// before the first read, against the object the lock was configured with.
func (s annotationStore[T]) RecordEvent(recorder EventRecorder, identity, event string) {
	if recorder == nil {
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
