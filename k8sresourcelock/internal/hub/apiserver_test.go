package hub

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// apiServerLeases models the Leases of one namespace as an API server
// serves them, where a shared watch depends on it (neither fake clientset
// does these): a watch without a resourceVersion starts with one synthetic
// ADDED per existing object, in key order, each at that object's own
// version; a watch from a version replays every change after it; a version
// older than the last compaction is refused with 410 Gone; a list carries the
// version it was read at. Writes check the resourceVersion.
type apiServerLeases struct {
	mu      sync.Mutex
	version uint64
	objects map[string]*coordinationv1.Lease
	// history is every change, in version order; compacted is the version
	// up to which it was forgotten.
	history   []watch.Event
	compacted uint64
	// expireOnOpen refuses a watch from a compacted version when it opens,
	// rather than with an error event in its stream (the watch cache's way).
	expireOnOpen bool
	open         []*modelWatch
	// Requests served: namespace-wide watches and lists, and watches of one
	// name (a lock watching alone).
	shared, lists, alone int
}

func newAPIServerLeases() *apiServerLeases {
	return &apiServerLeases{objects: map[string]*coordinationv1.Lease{}}
}

// Leases makes s a Leases client; the namespace is always ns.
func (s *apiServerLeases) Leases(string) coordinationv1client.LeaseInterface {
	return modelLeases{s: s}
}

// modelLeases serves what a lock and a hub call; anything else panics.
type modelLeases struct {
	coordinationv1client.LeaseInterface
	s *apiServerLeases
}

// modelWatch is one watch the model serves; its channel is written and
// closed only under the model's lock.
type modelWatch struct {
	s      *apiServerLeases
	name   string // "" for a namespace-wide watch
	ch     chan watch.Event
	closed bool
}

func (w *modelWatch) ResultChan() <-chan watch.Event { return w.ch }

func (w *modelWatch) Stop() {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.closeLocked()
}

func (w *modelWatch) closeLocked() {
	if !w.closed {
		w.closed = true
		close(w.ch)
		w.s.open = slices.DeleteFunc(w.s.open, func(o *modelWatch) bool { return o == w })
	}
}

func (w *modelWatch) sendLocked(ev watch.Event) {
	if w.closed || (w.name != "" && ev.Object.(*coordinationv1.Lease).Name != w.name) {
		return
	}
	select {
	case w.ch <- ev:
	default:
		panic("model watch: reader fell 10000 events behind")
	}
}

func (m modelLeases) Get(_ context.Context, name string, _ metav1.GetOptions) (*coordinationv1.Lease, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	l, ok := m.s.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), name)
	}
	return l.DeepCopy(), nil
}

func (m modelLeases) Create(_ context.Context, l *coordinationv1.Lease, _ metav1.CreateOptions) (*coordinationv1.Lease, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if _, ok := m.s.objects[l.Name]; ok {
		return nil, apierrors.NewAlreadyExists(coordinationv1.Resource("leases"), l.Name)
	}
	return m.s.storeLocked(watch.Added, l), nil
}

func (m modelLeases) Update(_ context.Context, l *coordinationv1.Lease, _ metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	stored, ok := m.s.objects[l.Name]
	if !ok {
		return nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), l.Name)
	}
	if stored.ResourceVersion != l.ResourceVersion {
		return nil, apierrors.NewConflict(coordinationv1.Resource("leases"), l.Name, nil)
	}
	return m.s.storeLocked(watch.Modified, l), nil
}

// storeLocked stores l at the next version and tells every open watch.
func (s *apiServerLeases) storeLocked(t watch.EventType, l *coordinationv1.Lease) *coordinationv1.Lease {
	s.version++
	l = l.DeepCopy()
	l.Namespace, l.ResourceVersion = ns, strconv.FormatUint(s.version, 10)
	s.objects[l.Name] = l
	ev := watch.Event{Type: t, Object: l.DeepCopy()}
	s.history = append(s.history, ev)
	for _, w := range s.open {
		w.sendLocked(watch.Event{Type: t, Object: l.DeepCopy()})
	}
	return l.DeepCopy()
}

// write changes the holder of the Lease called name, creating it if need be.
func (s *apiServerLeases) write(name, holder string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
	t := watch.Added
	if _, ok := s.objects[name]; ok {
		t = watch.Modified
	}
	return s.storeLocked(t, l).ResourceVersion
}

// otherWrite advances the version as a write of another resource does.
func (s *apiServerLeases) otherWrite() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
}

// compact forgets every change so far: a watch from an older version is
// refused.
func (s *apiServerLeases) compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = s.version
	s.history = nil
}

// cut ends every open watch early, after the events already sent.
func (s *apiServerLeases) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.open) > 0 {
		s.open[0].closeLocked()
	}
}

// served returns the namespace-wide watches, lists and watches of one name
// served so far.
func (s *apiServerLeases) served() (shared, lists, alone int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shared, s.lists, s.alone
}

func (m modelLeases) List(_ context.Context, _ metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.lists++
	list := &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatUint(m.s.version, 10)}}
	for _, name := range slices.Sorted(maps.Keys(m.s.objects)) {
		list.Items = append(list.Items, *m.s.objects[name].DeepCopy())
	}
	return list, nil
}

func (m modelLeases) Watch(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &modelWatch{s: s, ch: make(chan watch.Event, 10000)}
	if opts.FieldSelector != "" {
		s.alone++
		w.name = opts.FieldSelector[len("metadata.name="):]
	} else {
		s.shared++
	}
	switch {
	case opts.ResourceVersion == "":
		for _, name := range slices.Sorted(maps.Keys(s.objects)) {
			w.sendLocked(watch.Event{Type: watch.Added, Object: s.objects[name].DeepCopy()})
		}
	default:
		from, err := strconv.ParseUint(opts.ResourceVersion, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest("resourceVersion " + opts.ResourceVersion)
		}
		if from < s.compacted {
			gone := apierrors.NewResourceExpired("too old resource version: " + opts.ResourceVersion)
			if s.expireOnOpen {
				return nil, gone
			}
			w.ch <- watch.Event{Type: watch.Error, Object: &gone.ErrStatus}
			close(w.ch)
			w.closed = true
			return w, nil
		}
		for _, ev := range s.history {
			if versionOf(ev) > from {
				w.sendLocked(watch.Event{Type: ev.Type, Object: ev.Object.DeepCopyObject()})
			}
		}
	}
	s.open = append(s.open, w)
	return w, nil
}
