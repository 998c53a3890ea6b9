// Package certmanagerlock has the shape of the fake lock in cert-manager's
// pkg/healthz tests: a struct written against client-go's resourcelock,
// with the six methods of upstream's Interface and no Key, given to
// RunOrDie as Lock beside a healthz WatchDog. The callers test builds it
// with the imports swapped for this library's.
package certmanagerlock

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

type memoryLock struct {
	name      string
	record    *resourcelock.LeaderElectionRecord
	getErr    error
	updateErr error
	mu        sync.Mutex
}

var _ resourcelock.Interface = &memoryLock{}

func (m *memoryLock) Identity() string { return "local-node" }

func (m *memoryLock) Describe() string { return m.name }

func (m *memoryLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.getErr != nil {
		return nil, nil, m.getErr
	}
	if m.record == nil {
		return nil, nil, apierrors.NewNotFound(schema.ParseGroupResource("configmap"), m.name)
	}
	raw, err := json.Marshal(*m.record)
	if err != nil {
		return nil, nil, err
	}
	return m.record, raw, nil
}

func (m *memoryLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record = &ler
	return nil
}

func (m *memoryLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record = &ler
	return m.updateErr
}

func (m *memoryLock) RecordEvent(string) {}

// Run elects with the lock the way cert-manager's test does.
func Run(ctx context.Context) {
	lock := &memoryLock{name: "healthz-test"}
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		LeaseDuration: 500 * time.Millisecond,
		RenewDeadline: 400 * time.Millisecond,
		RetryPeriod:   300 * time.Millisecond,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
			OnNewLeader:      func(string) {},
		},
		Lock:     lock,
		WatchDog: leaderelection.NewLeaderHealthzAdaptor(0),
	})
}
