package k8sleaderelection

import (
	"context"
	"sync/atomic"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// hangingLock wraps a lock. While hang is set, its reads and writes wait for
// their context to end, as a real client's do when the API server never
// answers. While stuck is set they wait for release to close, ignoring their
// context: a deadlock. writes sees every record written, reads every read.
type hangingLock struct {
	rl.Interface
	hang    atomic.Bool
	stuck   atomic.Bool
	release chan struct{}
	writes  func(rl.LeaderElectionRecord)
	reads   func()
}

func (l *hangingLock) wait(ctx context.Context) error {
	if l.stuck.Load() {
		<-l.release
		return context.Canceled
	}
	if l.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (l *hangingLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	if l.reads != nil {
		l.reads()
	}
	if err := l.wait(ctx); err != nil {
		return nil, nil, err
	}
	return l.Interface.Get(ctx)
}

func (l *hangingLock) Update(ctx context.Context, r rl.LeaderElectionRecord) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	if l.writes != nil {
		l.writes(r)
	}
	return l.Interface.Update(ctx, r)
}

func (l *hangingLock) Create(ctx context.Context, r rl.LeaderElectionRecord) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	return l.Interface.Create(ctx, r)
}
