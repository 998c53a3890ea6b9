package k8sresourcelock

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// Watcher is implemented by a lock that can be watched instead of polled.
// An elector calls Watch and Apply from the goroutine that calls Get, Create
// and Update. Every lock kind of this package has it.
type Watcher interface {
	// Watch watches the lock's object(s) from the state last read or
	// written, or from the current state if there is none, in which case
	// the first event delivers it. Only events of the lock's own objects
	// arrive (some clientsets, such as client-go's stock fake, ignore the
	// name it asks for; Watch filters for them).
	Watch(ctx context.Context) (watch.Interface, error)
	// Apply takes an Added, Modified or Deleted event of that watch as the
	// lock's latest state, as if Get had returned it: the object becomes
	// the one Update writes over, and its record is returned as Get
	// returns it. A Deleted event gives a NotFound API error.
	Apply(event watch.Event) (*LeaderElectionRecord, []byte, error)
}

// WatchStarter is implemented by a lock whose watch can be opened away from
// the goroutine that reads and writes it, so that an elector goes on polling
// while a watch request is slow to be answered (a proxy that accepts the
// connection and never answers, an API server that stalls only watches).
// Every lock kind of this package has it.
type WatchStarter interface {
	// PrepareWatch notes, on the goroutine that calls Get, Create, Update
	// and Apply, the state a watch would resume from now (as Watch does),
	// and returns a function that opens that watch, as Watch would have.
	// The function touches nothing of the lock: it may run on another
	// goroutine, while the lock is read and written, and must return once
	// its context is done. PrepareWatch returns nil where it cannot promise
	// that (a MultiLock with a half that is not a WatchStarter): the
	// elector then calls Watch.
	PrepareWatch() func(ctx context.Context) (watch.Interface, error)
}

// SharedReader is implemented by a lock whose process may already know its
// state from a watch the lock shares with others: a Lease lock's watch of
// its namespace, shared by every Lease lock of the process that uses the
// same client. A candidate subscribed to that watch takes its first look
// at the lock from it instead of a read of its own, so that a process that
// starts as a candidate in thousands of elections sends one list, not
// thousands of reads, before it acts. A lock that embeds *LeaseLock and
// wraps its Get (to note what it read) must wrap GetShared too, or a first
// look from the shared watch passes it by.
type SharedReader interface {
	// GetShared returns the lock's state as the running shared watch
	// last saw it, as Get would return it (a NotFound API error if the
	// object does not exist), and true; the object becomes the one Update
	// writes over. It sends no request, and returns false, changing
	// nothing, when no shared watch of the lock runs: the caller then
	// reads the lock with Get. The state is as fresh as the watch's
	// events, which every write of the lock's kind is checked against
	// (an Update carries the object's resourceVersion, a Create fails on
	// an existing object), as it is after Apply.
	GetShared() (*LeaderElectionRecord, []byte, error, bool)
	// MayShare reports whether a watch of the lock may join a shared
	// watch, which GetShared could then answer from: false once the
	// process has found that none can serve it (RBAC allows watching
	// the lock's object alone, or the clientset's versions order
	// nothing).
	MayShare() bool
}

// WatchTimeoutSeconds is how long the API server keeps one watch of a lock
// open before it ends it and the elector starts another: one request per
// lock every five minutes while nothing changes.
const WatchTimeoutSeconds = 300

// errNotThisLock is returned by Apply for an event about another object.
var errNotThisLock = errors.New("event is not about this lock's object")

// watchOptions asks for the object called name, from resourceVersion, with
// bookmarks and the lock's watch timeout.
func watchOptions(name, resourceVersion string) metav1.ListOptions {
	timeout := int64(WatchTimeoutSeconds)
	return metav1.ListOptions{
		FieldSelector:       fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion:     resourceVersion,
		AllowWatchBookmarks: true,
		TimeoutSeconds:      &timeout,
	}
}

// onlyNamed passes on the events of w that are about the object ns/name, and
// every event that is about no object in particular (errors, bookmarks).
func onlyNamed(w watch.Interface, ns, name string) watch.Interface {
	return newRelay(func(ev watch.Event) bool {
		if ev.Type == watch.Error || ev.Type == watch.Bookmark {
			return true
		}
		m, err := meta.Accessor(ev.Object)
		return err == nil && m.GetName() == name && m.GetNamespace() == ns
	}, w)
}

// objectOf checks that ev is about the object meta names and is a T.
func objectOf[T interface {
	comparable
	metav1.Object
}](ev watch.Event, ns, name string) (T, error) {
	var none T
	obj, ok := ev.Object.(T)
	if !ok || obj == none {
		return none, fmt.Errorf("%w: %T", errNotThisLock, ev.Object)
	}
	if obj.GetNamespace() != ns || obj.GetName() != name {
		return none, fmt.Errorf("%w: %s/%s", errNotThisLock, obj.GetNamespace(), obj.GetName())
	}
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted:
		return obj, nil
	}
	return none, fmt.Errorf("%w: a %s event", errNotThisLock, ev.Type)
}

// relay delivers the events of one or more watches that keep accepts on
// one channel. It ends, and stops them all, as soon as any of them ends. Its
// goroutines keep reading a source until it closes, so that a source never
// blocks (client-go's stock fake panics when a watcher falls behind).
type relay struct {
	sources []watch.Interface
	out     chan watch.Event
	stop    chan struct{}
	once    sync.Once
}

func newRelay(keep func(watch.Event) bool, sources ...watch.Interface) *relay {
	r := &relay{sources: sources, out: make(chan watch.Event), stop: make(chan struct{})}
	var running sync.WaitGroup
	for _, src := range sources {
		running.Go(func() {
			defer r.Stop()
			for ev := range src.ResultChan() {
				if !keep(ev) {
					continue
				}
				select {
				case r.out <- ev:
				case <-r.stop:
					for range src.ResultChan() {
					}
					return
				}
			}
		})
	}
	go func() {
		running.Wait()
		close(r.out)
	}()
	return r
}

// ResultChan returns the events; it is closed once every source has ended.
func (r *relay) ResultChan() <-chan watch.Event { return r.out }

// Stop stops every source.
func (r *relay) Stop() {
	r.once.Do(func() {
		close(r.stop)
		for _, src := range r.sources {
			src.Stop()
		}
	})
}
