// Package hub shares one watch of a namespace's objects among the locks of
// a process that read them through the same client. It is a process-wide
// registry with goroutines of its own, not API: k8sresourcelock's Lease
// lock is its only user.
package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
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
//
// A hub lists the namespace and watches from the list's resourceVersion, as
// an informer does, and resumes each later watch from the last version it
// was sent: every point it resumes from is one at which it knows every
// object. (A watch without a resourceVersion would start with one event per
// object, in key order, each at that object's own version; the last of them
// is no such point, and resuming from it replays older changes of objects
// already seen.)

// Key identifies a hub: the client, the namespace, the resource.
type Key struct {
	// Client is the typed client the locks read through.
	Client any
	// Namespace and Resource name what the hub lists and watches.
	Namespace, Resource string
}

// hubs holds the running hubs of the process, and the keys that never get
// one: the namespace watch was refused (RBAC), or the hub found that
// resourceVersions do not order events. Each is tried once per process.
var hubs = struct {
	sync.Mutex
	byKey   map[Key]*hub
	refused map[Key]bool
}{byKey: map[Key]*hub{}, refused: map[Key]bool{}}

// ErrNoHub is returned by Subscribe when no hub can serve the lock, which
// then watches its object alone.
var ErrNoHub = errors.New("no shared watch for this lock")

// errHubClosed is returned by add when the hub stopped as the lock joined
// it: the lock joins (or starts) the next one.
var errHubClosed = errors.New("shared watch stopped")

// subscriptionBuffer is how many events a subscription holds for its
// reader; one that falls further behind is ended, and its lock reads and
// subscribes again.
const subscriptionBuffer = 64

// Source lists and watches every object of a hub's resource in its
// namespace.
type Source struct {
	// List lists them.
	List func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error)
	// Watch watches them.
	Watch func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	// TimeoutSeconds is how long the API server keeps one watch open.
	TimeoutSeconds int64
}

type hub struct {
	key Key
	Source

	// runCtx is the context of the hub's watches; cancel ends it.
	runCtx context.Context
	cancel context.CancelFunc
	// ready is closed once the first watch is open (done is set) or
	// failed (startErr is set).
	ready    chan struct{}
	startErr error
	done     chan struct{}

	mu sync.Mutex
	// subs are the subscriptions, by object name.
	subs map[string]map[*subscription]bool
	// latest is the last event seen of each object, to bring a late
	// subscriber up to date.
	latest map[string]watch.Event
	// broken is set once the hub has given up (versions that do not
	// grow, watches that keep ending at once); it then refuses
	// subscriptions.
	broken error
	// closed is set when the hub leaves the registry, its last
	// subscription gone; it then refuses subscriptions.
	closed bool
	// watching is true while a watch of the hub runs: latest then holds
	// every object as of the last event (see Peek).
	watching bool
	// opening is true until the first watch has opened or failed;
	// waiters counts the locks waiting for that, and abandoned is set
	// when the last of them gave up before it.
	opening   bool
	waiters   int
	abandoned bool
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

// Subscribe returns a watch of the object called name, from resourceVersion
// rv (the state the lock last read), fed by the hub of key, which it starts
// if it is not running. src lists and watches the whole namespace. It fails with
// ErrNoHub when a hub cannot serve: rv does not order events, the client
// cannot be a key, or the hub's watch is not allowed.
//
// The registry is never locked while a watch opens: a namespace whose API
// server does not answer holds up only the locks that wait for its hub,
// each no longer than its own ctx.
func Subscribe(ctx context.Context, key Key, name, rv string, src Source) (watch.Interface, error) {
	since, err := strconv.ParseUint(rv, 10, 64)
	if err != nil || !nilness.Key(key.Client) {
		return nil, ErrNoHub
	}
	for {
		hubs.Lock()
		if hubs.refused[key] {
			hubs.Unlock()
			return nil, ErrNoHub
		}
		h := hubs.byKey[key]
		if h == nil {
			h = newHub(key, src)
			hubs.byKey[key] = h
			go h.start()
		}
		h.mu.Lock()
		h.waiters++
		h.mu.Unlock()
		hubs.Unlock()
		select {
		case <-h.ready:
			h.mu.Lock()
			h.waiters--
			h.mu.Unlock()
		case <-ctx.Done():
			h.leaveOpening()
			return nil, ctx.Err()
		}
		if errors.Is(h.startErr, errAbandoned) {
			continue
		}
		if h.startErr != nil {
			return nil, h.startErr
		}
		w, err := h.add(name, since)
		switch {
		case errors.Is(err, errHubClosed):
			continue
		case err != nil:
			h.retireIfIdle()
			return nil, err
		}
		return w, nil
	}
}

// hubStartTimeout bounds how long a hub may take to open its first watch.
const hubStartTimeout = time.Minute

// errAbandoned is a hub's start error when every lock that waited for it
// gave up first; a lock that comes later starts another.
var errAbandoned = errors.New("shared watch abandoned while it opened")

func newHub(key Key, src Source) *hub {
	runCtx, cancel := context.WithCancel(context.Background())
	return &hub{key: key, Source: src, ready: make(chan struct{}), runCtx: runCtx, cancel: cancel, opening: true,
		subs: map[string]map[*subscription]bool{}, latest: map[string]watch.Event{}}
}

// start lists the namespace, opens the hub's watch from there and runs it,
// then closes ready. It runs in a
// goroutine of its own, bounded by hubStartTimeout, not by the context of
// the lock that came first: every lock waits for it only as long as its own
// context allows, and a slow API server only makes the locks poll until it
// answers. If every waiting lock gives up first (leaveOpening), the start
// is called off. A hub whose watch could not open leaves the registry at
// once, and one RBAC forbids is never tried again.
func (h *hub) start() {
	defer close(h.ready)
	timer := time.AfterFunc(hubStartTimeout, h.cancel)
	var w watch.Interface
	rv, err := h.relist(h.runCtx)
	if err == nil {
		w, err = h.Watch(h.runCtx, h.watchOptions(rv))
	}
	timedOut := !timer.Stop()
	h.mu.Lock()
	h.opening = false
	abandoned := h.abandoned
	h.mu.Unlock()
	switch {
	case abandoned:
		err = errAbandoned
	case timedOut:
		err = fmt.Errorf("opening the shared watch of %s took longer than %v", h.key.Resource, hubStartTimeout)
	}
	if err == nil {
		h.done = make(chan struct{})
		// Before ready closes: a lock that joins may Peek at once.
		h.setWatching(true)
		go h.run(h.runCtx, w, rv)
		return
	}
	if w != nil {
		w.Stop()
	}
	h.cancel()
	if apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
		err = fmt.Errorf("%w: %w", ErrNoHub, err)
	}
	h.startErr = err
	hubs.Lock()
	defer hubs.Unlock()
	if hubs.byKey[h.key] == h {
		delete(hubs.byKey, h.key)
	}
	if errors.Is(err, ErrNoHub) {
		hubs.refused[h.key] = true
	}
}

// leaveOpening is called by a lock that gave up waiting for the hub to
// start. If the hub is still opening and no lock waits for it any more,
// the start is called off, and its request has returned when leaveOpening
// does; if it has started meanwhile and nobody joined, it is retired.
func (h *hub) leaveOpening() {
	h.mu.Lock()
	h.waiters--
	opening := h.opening
	calledOff := h.waiters == 0 && opening
	if calledOff {
		h.abandoned = true
	}
	h.mu.Unlock()
	if calledOff {
		// Its request is cancelled; wait until it has returned, so that
		// a lock that watches again at once (alone, or through the
		// next hub) never has two watch requests pending.
		h.cancel()
		<-h.ready
		return
	}
	if opening {
		return // a lock still waits, and will join
	}
	// The watch has opened or failed: ready is about to close, if it has
	// not yet. A hub nobody joined must not run on.
	<-h.ready
	if h.startErr == nil {
		h.retireIfIdle()
	}
}

func ptrTo[T any](v T) *T { return &v }

// run reads the hub's watch, opened at version rv, hands each event to the
// subscriptions of its object, and starts the watch again when it ends: from
// the last version seen, or, if that expired, from a new list of the
// namespace, in which case every subscription is told so, to read its
// object again. A watch that ends early is resumed
// at once, unnoticed by the locks; a second in a row, or a watch that fails
// to open, ends every subscription (the locks poll until they subscribe
// again), and the next waits a growing backoff; after maxEarlyHubEnds early
// ends in a row the hub gives up, and its locks watch alone (and poll, if
// that fails too).
func (h *hub) run(ctx context.Context, w watch.Interface, rv string) {
	defer close(h.done)
	backoff := time.Duration(0)
	early := 0
	for {
		if w != nil {
			opened := time.Now()
			h.setWatching(true)
			rv = h.drain(ctx, w, rv)
			h.setWatching(false)
			w.Stop()
			w = nil
			switch {
			case time.Since(opened) >= healthyHubWatch:
				early, backoff = 0, 0
			case early == 0:
				// The next watch resumes where this one ended, at
				// once: the locks lose nothing, and need not know.
				early = 1
			default:
				// Until the next watch opens the hub sees nothing: its
				// locks are told, and poll meanwhile.
				early++
				backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
				h.endSubscriptions()
			}
			if early >= maxEarlyHubEnds {
				h.fail(fmt.Errorf("%w: its watches of %s keep ending as soon as they start", ErrNoHub, h.key.Resource))
			}
		}
		if ctx.Err() != nil || h.isBroken() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		var err error
		if rv == "" {
			// Bounded as the first list is: a list that hangs would keep
			// the locks subscribed to a hub that tells them nothing.
			listCtx, cancel := context.WithTimeout(ctx, hubStartTimeout)
			rv, err = h.relist(listCtx)
			cancel()
			if errors.Is(err, ErrNoHub) {
				h.fail(err)
				return
			}
		}
		if err == nil {
			w, err = h.Watch(ctx, h.watchOptions(rv))
		}
		switch {
		case err == nil:
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			rv = ""
			h.expire()
		default:
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			h.endSubscriptions()
		}
	}
}

// watchOptions asks for every object from version rv, with bookmarks
// and the lock's watch timeout.
func (h *hub) watchOptions(rv string) metav1.ListOptions {
	return metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: ptrTo(h.TimeoutSeconds)}
}

// relist reads every object of the namespace, hands each to the
// subscriptions of its name, and returns the list's version: the point the
// next watch starts from, at which the hub knows every object. A list
// without a numeric version shows that the clientset does not order events
// (client-go's stock fake, before v0.36, gives none): no hub then.
func (h *hub) relist(ctx context.Context) (string, error) {
	list, err := h.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	listMeta, err := meta.ListAccessor(list)
	if err != nil {
		return "", fmt.Errorf("%w: list of %s: %w", ErrNoHub, h.key.Resource, err)
	}
	rv := listMeta.GetResourceVersion()
	if _, err := strconv.ParseUint(rv, 10, 64); err != nil {
		return "", fmt.Errorf("%w: the list of %s has resourceVersion %q, which orders no events", ErrNoHub, h.key.Resource, rv)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return "", fmt.Errorf("%w: list of %s: %w", ErrNoHub, h.key.Resource, err)
	}
	for _, item := range items {
		m, err := meta.Accessor(item)
		if err != nil {
			continue
		}
		if !h.dispatch(m.GetName(), m.GetResourceVersion(), watch.Event{Type: watch.Added, Object: item}) {
			return "", fmt.Errorf("%w: resourceVersions of %s do not grow", ErrNoHub, h.key.Resource)
		}
	}
	return rv, nil
}

// endSubscriptions ends every subscription; their locks subscribe again.
//
// Each is first sent an error, so that its lock counts the end as a broken
// watch (and watches again after a backoff, polling meanwhile), not as a
// watch that ended by itself, which too many times in a row makes a lock
// give up watching for good.
func (h *hub) endSubscriptions() {
	broken := watch.Event{Type: watch.Error, Object: &apierrors.NewServiceUnavailable("the shared watch of the lock's namespace broke").ErrStatus}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sendAllLocked(broken)
	h.endAllLocked()
}

// sendAllLocked gives ev to every subscription that has room for it.
func (h *hub) sendAllLocked(ev watch.Event) {
	for _, subs := range h.subs {
		for s := range subs {
			select {
			case s.ch <- ev:
			default:
			}
		}
	}
}

const (
	// healthyHubWatch is how long a hub's watch must last for its end to
	// count as routine (the server's timeout) rather than early.
	healthyHubWatch = 10 * time.Second
	// maxEarlyHubEnds is how many watches in a row may end early before
	// the hub gives up.
	maxEarlyHubEnds = 5
)

// setWatching notes whether a watch of the hub runs.
func (h *hub) setWatching(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watching = on
}

// isBroken reports whether the hub has given up.
func (h *hub) isBroken() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.broken != nil
}

// fail gives the hub up: every subscription ends, and no new one is taken.
func (h *hub) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failLocked(err)
}

func (h *hub) failLocked(err error) {
	if h.broken == nil {
		h.broken = err
	}
	h.endAllLocked()
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
					if !h.dispatch(m.GetName(), rv, ev) {
						return rv
					}
				}
			}
		}
	}
}

// dispatch hands ev, of object name at version rv, to its subscriptions,
// and reports whether the hub goes on.
// A version that does not grow shows that the clientset does not order
// events (client-go's stock fake keeps whatever version an object was given):
// the hub then ends every subscription and refuses new ones, and each lock
// watches its object alone.
func (h *hub) dispatch(name, rv string, ev watch.Event) bool {
	version, err := strconv.ParseUint(rv, 10, 64)
	h.mu.Lock()
	defer h.mu.Unlock()
	last, seen := h.latest[name]
	// A deletion may carry the object as last stored, at its version
	// (the fakes send it so; an API server gives it a version of its
	// own): at that version it is news, not a replay.
	deletion := ev.Type == watch.Deleted
	if seen && err == nil && version == versionOf(last) && !deletion && equality.Semantic.DeepEqual(last.Object, ev.Object) {
		// The same state again: a watch that resumed from this version
		// and replays it (client-go's newer fakes do). Nothing new.
		return true
	}
	if seen && (err != nil || version < versionOf(last) || version == versionOf(last) && !deletion) {
		h.failLocked(fmt.Errorf("%w: resourceVersions of %s do not grow", ErrNoHub, h.key.Resource))
		return false
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
	return true
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
	// Until a new list, the hub knows nothing: Peek must not take an
	// object it forgot for one it knows to be absent.
	h.watching = false
	h.latest = map[string]watch.Event{}
	h.sendAllLocked(gone)
	h.endAllLocked()
}

// add subscribes to name from version since, bringing the subscription up
// to date with the last event the hub has of it.
func (h *hub) add(name string, since uint64) (watch.Interface, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHubClosed
	}
	if h.broken != nil {
		return nil, h.broken
	}
	s := &subscription{hub: h, name: name, since: since, ch: make(chan watch.Event, subscriptionBuffer)}
	if h.subs[name] == nil {
		h.subs[name] = map[*subscription]bool{}
	}
	h.subs[name][s] = true
	// A lock that read nothing (since 0) takes any state as news, even
	// one without a version (client-go's stock fake keeps objects as
	// written): its object may have been created after its read, and
	// nothing else would tell it.
	if ev, ok := h.latest[name]; ok && (since == 0 || versionOf(ev) > since) {
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
	h.mu.Lock()
	s.endLocked()
	h.mu.Unlock()
	h.retireIfIdle()
}

// retireIfIdle takes the hub out of the registry and stops it if no
// subscription is left; a key whose hub broke gets none again. It waits for
// the hub's goroutine outside the registry's lock.
func (h *hub) retireIfIdle() {
	hubs.Lock()
	h.mu.Lock()
	idle := len(h.subs) == 0 && h.waiters == 0 && !h.closed
	if idle {
		h.closed = true
	}
	broken := h.broken != nil
	h.mu.Unlock()
	if broken {
		hubs.refused[h.key] = true
	}
	if idle && hubs.byKey[h.key] == h {
		delete(hubs.byKey, h.key)
	}
	hubs.Unlock()
	if idle && h.done != nil {
		h.cancel()
		<-h.done
	}
}

// Peek returns the object called name as the running hub of key knows it:
// its last event and true, or, if the hub knows no such object, a zero
// event and true. It returns false when no hub of key runs a watch now (none
// started, or one between a broken watch and the next): the caller must
// read the object itself. Peek starts nothing and sends no request; a lock
// subscribed to the hub learns from it what a read would have told it, as
// fresh as the events its subscription delivers.
func Peek(key Key, name string) (watch.Event, bool) {
	if !nilness.Key(key.Client) {
		return watch.Event{}, false
	}
	hubs.Lock()
	h := hubs.byKey[key]
	hubs.Unlock()
	if h == nil {
		return watch.Event{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.watching || h.broken != nil || h.closed {
		return watch.Event{}, false
	}
	return h.latest[name], true
}

// MaySubscribe reports whether a lock of key may get a subscription: false
// once the process has found that no hub can serve key (RBAC forbids the
// namespace watch, or versions do not order events).
func MaySubscribe(key Key) bool {
	if !nilness.Key(key.Client) {
		return false
	}
	hubs.Lock()
	defer hubs.Unlock()
	return !hubs.refused[key]
}

// SinceVersion is the version a lock subscribes from: that of the object it
// last read, or "0" (every event is news) if it found none.
func SinceVersion(read bool, rv string) string {
	if !read {
		return "0"
	}
	return rv
}
