// Package fakekube gives the tests of this module a fake clientset that
// behaves like a real API server where leader election depends on it: every
// write gets a new resourceVersion, and an update that carries a stale one
// fails with a Conflict; every object created gets a UID of its own, which
// updates keep; a list carries the version it was read at. The stock fake
// accepts any update, which would hide
// exactly the races an elector must survive.
package fakekube

import (
	"fmt"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Clientset is a fake clientset with optimistic concurrency.
type Clientset struct {
	*fake.Clientset

	mu      sync.Mutex
	version int
	outage  error
}

// New returns a Clientset holding objects.
func New(objects ...runtime.Object) *Clientset {
	return Wrap(fake.NewClientset(objects...))
}

// Wrap gives cs, a stock fake clientset, the optimistic concurrency of an
// API server, and returns it with the means to cut it off. It must be
// called before any client of cs runs.
func Wrap(cs *fake.Clientset) *Clientset {
	c := &Clientset{Clientset: cs}
	// Reactors must all be in place before clients run: the fake reads
	// its reactor chain without a lock.
	c.PrependReactor("create", "*", c.stampCreate)
	c.PrependReactor("update", "*", c.checkUpdate)
	c.PrependReactor("list", "*", c.stampList)
	c.PrependReactor("*", "*", c.failDuringOutage)
	return c
}

// SetOutage makes every request fail with err until SetOutage(nil), as if
// the API server could not be reached.
func (c *Clientset) SetOutage(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outage = err
}

func (c *Clientset) failDuringOutage(k8stesting.Action) (bool, runtime.Object, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outage != nil {
		return true, nil, c.outage
	}
	return false, nil, nil
}

func (c *Clientset) nextVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version++
	return strconv.Itoa(c.version)
}

// stampCreate gives a new object its first resourceVersion and a UID, and
// lets the tracker store it.
func (c *Clientset) stampCreate(action k8stesting.Action) (bool, runtime.Object, error) {
	obj, err := meta.Accessor(action.(k8stesting.CreateAction).GetObject())
	if err != nil {
		return false, nil, nil
	}
	version := c.nextVersion()
	obj.SetResourceVersion(version)
	obj.SetUID(types.UID("uid-" + version))
	return false, nil, nil
}

// checkUpdate refuses an update whose resourceVersion is not the stored one,
// as the API server does, and otherwise gives it the next version. Reactors
// run under the fake's lock, so the check and the store are atomic.
func (c *Clientset) checkUpdate(action k8stesting.Action) (bool, runtime.Object, error) {
	update := action.(k8stesting.UpdateAction)
	obj, err := meta.Accessor(update.GetObject())
	if err != nil {
		return false, nil, nil
	}
	stored, err := c.Tracker().Get(update.GetResource(), update.GetNamespace(), obj.GetName())
	if err != nil {
		return true, nil, err
	}
	storedMeta, err := meta.Accessor(stored)
	if err != nil {
		return false, nil, nil
	}
	if obj.GetResourceVersion() != storedMeta.GetResourceVersion() {
		return true, nil, apierrors.NewConflict(update.GetResource().GroupResource(), obj.GetName(),
			errStale{sent: obj.GetResourceVersion(), stored: storedMeta.GetResourceVersion()})
	}
	switch uid := storedMeta.GetUID(); obj.GetUID() {
	case "":
		obj.SetUID(uid)
	case uid:
	default:
		return true, nil, apierrors.NewConflict(update.GetResource().GroupResource(), obj.GetName(),
			fmt.Errorf("precondition failed: UID %s is not the stored %s", obj.GetUID(), uid))
	}
	obj.SetResourceVersion(c.nextVersion())
	return false, nil, nil
}

// stampList lists from the tracker and gives the list the version of the
// last write, as the API server does (the tracker gives none, or a count of
// its own), so that a list and a watch from its version can be used
// together.
func (c *Clientset) stampList(action k8stesting.Action) (bool, runtime.Object, error) {
	list, ok := action.(k8stesting.ListActionImpl)
	if !ok {
		return false, nil, nil
	}
	obj, err := c.Tracker().List(list.GetResource(), list.Kind, list.GetNamespace())
	if err != nil {
		return true, nil, err
	}
	if listMeta, err := meta.ListAccessor(obj); err == nil {
		c.mu.Lock()
		listMeta.SetResourceVersion(strconv.Itoa(c.version))
		c.mu.Unlock()
	}
	return true, obj, nil
}

type errStale struct{ sent, stored string }

func (e errStale) Error() string {
	return "the object has been modified: resourceVersion " + e.sent + " is not the stored " + e.stored
}

// Count returns how many recorded actions have the given verb and resource
// (for example "update", "leases"); an empty resource matches any.
func (c *Clientset) Count(verb, resource string) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == verb && (resource == "" || a.GetResource().Resource == resource) {
			n++
		}
	}
	return n
}
