package faults

import (
	"errors"
	"net/http"
	"sync/atomic"

	"k8s.io/client-go/rest"
)

// ErrCrashed is what every request of a crashed client fails with.
var ErrCrashed = errors.New("process crashed")

// Switch simulates a process that dies: once crashed, every new request of
// the clients it wraps fails at once, so nothing the process still runs can
// reach the API server (a leader cannot release its lock, for one). A
// request already in flight completes, as one already sent by a dying
// process would. It works the same for any library built on client-go.
type Switch struct{ crashed atomic.Bool }

// Crash makes every wrapped client's requests fail from now on.
func (s *Switch) Crash() { s.crashed.Store(true) }

// Crashed reports whether Crash was called.
func (s *Switch) Crashed() bool { return s.crashed.Load() }

// Wrap returns a copy of config whose requests fail once s has crashed.
func (s *Switch) Wrap(config *rest.Config) *rest.Config {
	config = rest.CopyConfig(config)
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if s.crashed.Load() {
				return nil, ErrCrashed
			}
			return rt.RoundTrip(req)
		})
	})
	return config
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
