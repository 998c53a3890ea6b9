package k8sleaderelection

import (
	"net/http"
	"sync"
	"time"
)

// HealthzAdaptor reports, as a /healthz (or /livez) check, whether a
// LeaderElector is stuck in a way that only a restart by its kubelet ends:
// its lock still names it but has not been renewed for its lease and more,
// whether Run still runs or has returned; or its work outlives its lease
// (see LeaderElector.Check). It can be registered before the elector exists;
// until SetLeaderElection ties it to one, it reports healthy.
type HealthzAdaptor struct {
	mu      sync.Mutex
	le      *LeaderElector
	timeout time.Duration
}

// NewLeaderHealthzAdaptor returns an adaptor that tolerates a lease going
// without renewal for up to timeout beyond its LeaseDuration.
func NewLeaderHealthzAdaptor(timeout time.Duration) *HealthzAdaptor {
	return &HealthzAdaptor{timeout: timeout}
}

// Name returns the name of the check, "leaderElection".
func (l *HealthzAdaptor) Name() string {
	return "leaderElection"
}

// Check returns the elector's Check with the adaptor's timeout: an error,
// with client-go's message, once the elector has been stuck for
// LeaseDuration plus the timeout. It is safe to call concurrently and
// before SetLeaderElection.
func (l *HealthzAdaptor) Check(req *http.Request) error {
	l.mu.Lock()
	le := l.le
	l.mu.Unlock()
	if le == nil {
		return nil
	}
	return le.Check(l.timeout)
}

// SetLeaderElection ties the adaptor to le.
func (l *HealthzAdaptor) SetLeaderElection(le *LeaderElector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.le = le
}
