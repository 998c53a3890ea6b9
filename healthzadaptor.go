package k8sleaderelection

import (
	"net/http"
	"sync"
	"time"
)

// HealthzAdaptor reports, as a /healthz check, whether a LeaderElector that
// leads has stopped renewing its lease: a process stuck like that should be
// restarted by its kubelet. It can be registered before the elector exists;
// until SetLeaderElection ties it to one, it reports healthy.
type HealthzAdaptor struct {
	mu      sync.Mutex
	le      *LeaderElector
	timeout time.Duration
}

// NewLeaderHealthzAdaptor returns an adaptor that tolerates a leader going
// without renewal for up to timeout beyond its LeaseDuration.
func NewLeaderHealthzAdaptor(timeout time.Duration) *HealthzAdaptor {
	return &HealthzAdaptor{timeout: timeout}
}

// Name returns the name of the check, "leaderElection".
func (l *HealthzAdaptor) Name() string {
	return "leaderElection"
}

// Check returns an error only when the elector leads but has not renewed its
// lease for LeaseDuration plus the adaptor's timeout. It is safe to call
// concurrently and before SetLeaderElection.
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
