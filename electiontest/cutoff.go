package electiontest

import (
	"context"
	"errors"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// ErrCutOff is the error every request of a cut-off replica gets.
var ErrCutOff = errors.New("electiontest: replica cut off from the API server")

// cutOff is whether one replica is cut off, and the watches to end when it
// is.
type cutOff struct {
	mu      sync.Mutex
	on      bool
	watches map[watch.Interface]bool
}

func (c *cutOff) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		return ErrCutOff
	}
	return nil
}

func (e *Election) cutOffOf(identity string) *cutOff {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cut[identity]
	if c == nil {
		c = &cutOff{watches: map[watch.Interface]bool{}}
		e.cut[identity] = c
	}
	return c
}

// CutOff makes every request of the replica called identity's lock fail with
// ErrCutOff, and ends its watches, until Reconnect: a replica partitioned
// from the API server. A leader cut off stops leading once RenewDeadline has
// passed on the election's clock since its last renewal (see LoseLease).
func (e *Election) CutOff(identity string) {
	c := e.cutOffOf(identity)
	c.mu.Lock()
	c.on = true
	watches := c.watches
	c.watches = map[watch.Interface]bool{}
	c.mu.Unlock()
	for w := range watches {
		w.Stop()
	}
}

// Reconnect ends CutOff for the replica called identity.
func (e *Election) Reconnect(identity string) {
	c := e.cutOffOf(identity)
	c.mu.Lock()
	c.on = false
	c.mu.Unlock()
}

// cuttableClient is a replica's view of the fake clientset's Leases.
type cuttableClient struct {
	typedcoordinationv1.CoordinationV1Interface
	cut *cutOff
}

func (c *cuttableClient) Leases(namespace string) typedcoordinationv1.LeaseInterface {
	return &cuttableLeases{LeaseInterface: c.CoordinationV1Interface.Leases(namespace), cut: c.cut}
}

type cuttableLeases struct {
	typedcoordinationv1.LeaseInterface
	cut *cutOff
}

func (l *cuttableLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	if err := l.cut.err(); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Get(ctx, name, opts)
}

func (l *cuttableLeases) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	if err := l.cut.err(); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Create(ctx, lease, opts)
}

func (l *cuttableLeases) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if err := l.cut.err(); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Update(ctx, lease, opts)
}

func (l *cuttableLeases) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	l.cut.mu.Lock()
	defer l.cut.mu.Unlock()
	if l.cut.on {
		return nil, ErrCutOff
	}
	w, err := l.LeaseInterface.Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	tracked := &trackedWatch{Interface: w, cut: l.cut}
	l.cut.watches[tracked] = true
	return tracked, nil
}

// trackedWatch forgets itself when stopped, so that a replica that watches
// again and again does not pile up watches to end.
type trackedWatch struct {
	watch.Interface
	cut *cutOff
}

func (w *trackedWatch) Stop() {
	w.cut.mu.Lock()
	delete(w.cut.watches, w)
	w.cut.mu.Unlock()
	w.Interface.Stop()
}
