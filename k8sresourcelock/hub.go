package k8sresourcelock

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// A hub shares one watch of all the Leases of one namespace among every
// Lease lock of the process that reads them through the same client: a
// thousand elections in one process cost one watch, not a thousand (each
// watch holds its own buffers, tens of KiB). Each lock subscribes to its
// Lease's name and gets a watch.Interface of its own, fed by the hub.
//
// Only Leases are watched this way: they are small and hold nothing but
// leases. The ConfigMaps and Endpoints of a namespace carry payloads of
// their own, which a process that merely elects should neither receive nor
// keep, so an annotation lock watches its object alone.
//
// A hub needs to list and watch the whole namespace's objects of that
// resource; where RBAC allows only the lock's own name, it cannot start, and
// the lock watches its object alone. It also needs resourceVersions that
// order events (an API server's); a lock whose object has none (client-go's
// stock fake) watches alone, too.

// hubKey identifies a hub: the client, the namespace, the resource.
type hubKey struct {
	client    any
	namespace string
	resource  string
}

// hubs holds the running hubs of the process, and the keys that never get
// one: the namespace watch was refused (RBAC), or the hub found that
// resourceVersions do not order events. Each is tried once per process.
var hubs = struct {
	sync.Mutex
	byKey   map[hubKey]*hub
	refused map[hubKey]bool
}{byKey: map[hubKey]*hub{}, refused: map[hubKey]bool{}}

// errNoHub is returned by subscribe when no hub can serve the lock.
var errNoHub = errors.New("no shared watch for this lock")

// subscriptionBuffer is how many events a subscription holds for its
// reader; one that falls further behind is ended, and its lock reads and
// subscribes again.
const subscriptionBuffer = 64

type hub struct {
	key   hubKey
	watch func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)

	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// subs are the subscriptions, by object name.
	subs map[string]map[*subscription]bool
	// latest is the last event seen of each object, to bring a late
	// subscriber up to date.
	latest map[string]watch.Event
	// broken is set once the hub has given up (its watch is forbidden);
	// it then refuses subscriptions.
	broken error
}

// subscription is one lock's view of a hub: the events of its object, newer
// than the state the lock last read.
type subscription struct {
	hub   *hub
	name  string
	since uint64 // resourceVersion of the state the lock last read
	ch    chan watch.Event
	once  sync.Once
}

// ResultChan returns the subscription's events.
func (s *subscription) ResultChan() <-chan watch.Event { return s.ch }

// Stop ends the subscription.
func (s *subscription) Stop() { s.hub.unsubscribe(s) }

// subscribe returns a watch of the object called name, from resourceVersion
// rv (the state the lock last read), fed by the hub of key, which it starts
// if it is not running. watchFn watches the whole namespace. It fails with
// errNoHub when a hub cannot serve: rv does not order events, the client
// cannot be a key, or the hub's watch is not allowed.
func subscribe(ctx context.Context, key hubKey, name, rv string, watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) (watch.Interface, error) {
	since, err := strconv.ParseUint(rv, 10, 64)
	if err != nil || !comparableValue(key.client) {
		return nil, errNoHub
	}
	hubs.Lock()
	if hubs.refused[key] {
		hubs.Unlock()
		return nil, errNoHub
	}
	h := hubs.byKey[key]
	if h == nil {
		h = &hub{key: key, watch: watchFn, subs: map[string]map[*subscription]bool{}, latest: map[string]watch.Event{}}
		if err := h.start(ctx); err != nil {
			if errors.Is(err, errNoHub) {
				hubs.refused[key] = true
			}
			hubs.Unlock()
			return nil, err
		}
		hubs.byKey[key] = h
	}
	hubs.Unlock()
	return h.add(name, since)
}

// comparableValue reports whether v can safely be a map key: a non-nil
// pointer, as every typed client is.
func comparableValue(v any) bool {
	return v != nil && reflect.TypeOf(v).Kind() == reflect.Pointer && !reflect.ValueOf(v).IsNil()
}

// start opens the hub's watch and runs it. The first watch is opened here,
// before the subscriber goes on, so that a hub RBAC forbids is never kept.
// The watch lives in a context of the hub's own (it outlives the subscriber
// that started it); the subscriber's ctx only bounds how long opening it may
// take.
func (h *hub) start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	w, err := h.watch(runCtx, metav1.ListOptions{AllowWatchBookmarks: true, TimeoutSeconds: ptrTo(int64(WatchTimeoutSeconds))})
	if !stop() && err == nil {
		w.Stop()
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		if apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
			return fmt.Errorf("%w: %w", errNoHub, err)
		}
		return err
	}
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(runCtx, w)
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// run reads the hub's watch, hands each event to the subscriptions of its
// object, and starts the watch again when it ends: from the last version
// seen, or from scratch if that expired, in which case every subscription
// is told so, to read its object again.
func (h *hub) run(ctx context.Context, w watch.Interface) {
	defer close(h.done)
	rv := ""
	backoff := time.Duration(0)
	for {
		if w != nil {
			rv = h.drain(ctx, w, rv)
			w.Stop()
			w = nil
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		var err error
		w, err = h.watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: ptrTo(int64(WatchTimeoutSeconds))})
		switch {
		case err == nil:
			backoff = 0
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			rv = ""
			h.expire()
		default:
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
		}
	}
}

// drain hands on w's events until it ends, and returns the last version.
func (h *hub) drain(ctx context.Context, w watch.Interface, rv string) string {
	for {
		select {
		case <-ctx.Done():
			return rv
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv
			}
			switch ev.Type {
			case watch.Error:
				if err := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					h.expire()
					return ""
				}
				return rv
			case watch.Bookmark:
				if m, err := meta.Accessor(ev.Object); err == nil {
					rv = m.GetResourceVersion()
				}
			default:
				if m, err := meta.Accessor(ev.Object); err == nil {
					rv = m.GetResourceVersion()
					h.dispatch(m.GetName(), rv, ev)
				}
			}
		}
	}
}

// dispatch hands ev, of object name at version rv, to its subscriptions.
// A version that does not grow shows that the clientset does not order
// events (client-go's stock fake keeps whatever version an object was given):
// the hub then ends every subscription and refuses new ones, and each lock
// watches its object alone.
func (h *hub) dispatch(name, rv string, ev watch.Event) {
	version, err := strconv.ParseUint(rv, 10, 64)
	h.mu.Lock()
	defer h.mu.Unlock()
	if last, ok := h.latest[name]; ok && (err != nil || version <= versionOf(last)) {
		h.broken = fmt.Errorf("%w: resourceVersions of %s do not grow", errNoHub, h.key.resource)
		h.endAllLocked()
		return
	}
	h.latest[name] = ev
	if ev.Type == watch.Deleted {
		delete(h.latest, name)
	}
	for s := range h.subs[name] {
		if version < s.since {
			continue // older than the state the lock has read
		}
		s.deliverLocked(ev)
	}
}

// versionOf is the resourceVersion of ev's object as a number; 0 if none.
func versionOf(ev watch.Event) uint64 {
	m, err := meta.Accessor(ev.Object)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
	return v
}

// endAllLocked ends every subscription.
func (h *hub) endAllLocked() {
	for _, subs := range h.subs {
		for s := range subs {
			s.endLocked()
		}
	}
}

// deliverLocked gives ev to s, or ends s if it has fallen too far behind.
func (s *subscription) deliverLocked(ev watch.Event) {
	select {
	case s.ch <- ev:
	default:
		s.endLocked()
	}
}

// expire tells every subscription that the hub lost track of the objects:
// each lock must read its object again.
func (h *hub) expire() {
	gone := watch.Event{Type: watch.Error, Object: &apierrors.NewResourceExpired("the shared watch of the lock's namespace expired").ErrStatus}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest = map[string]watch.Event{}
	for _, subs := range h.subs {
		for s := range subs {
			select {
			case s.ch <- gone:
			default:
			}
		}
	}
	h.endAllLocked()
}

// add subscribes to name from version since, bringing the subscription up
// to date with the last event the hub has of it.
func (h *hub) add(name string, since uint64) (watch.Interface, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken != nil {
		return nil, h.broken
	}
	s := &subscription{hub: h, name: name, since: since, ch: make(chan watch.Event, subscriptionBuffer)}
	if h.subs[name] == nil {
		h.subs[name] = map[*subscription]bool{}
	}
	h.subs[name][s] = true
	if ev, ok := h.latest[name]; ok && versionOf(ev) > since {
		s.deliverLocked(ev)
	}
	return s, nil
}

// endLocked removes s and closes its channel.
func (s *subscription) endLocked() {
	s.once.Do(func() {
		delete(s.hub.subs[s.name], s)
		if len(s.hub.subs[s.name]) == 0 {
			delete(s.hub.subs, s.name)
		}
		close(s.ch)
	})
}

// unsubscribe ends s; the last subscription to leave stops the hub.
func (h *hub) unsubscribe(s *subscription) {
	hubs.Lock()
	defer hubs.Unlock()
	h.mu.Lock()
	s.endLocked()
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if h.broken != nil {
		hubs.refused[h.key] = true
	}
	if empty && hubs.byKey[h.key] == h {
		delete(hubs.byKey, h.key)
		h.cancel()
		<-h.done
	}
}

// sinceVersion is the version a lock subscribes from: that of the object it
// last read, or "0" (every event is news) if it found none.
func sinceVersion(read bool, rv string) string {
	if !read {
		return "0"
	}
	return rv
}
