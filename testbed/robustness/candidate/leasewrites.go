package main

import (
	"net/http"
	"strings"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// leaseWrites reports every write to a Lease that goes through it (a
// create, an update or a delete, whichever elector sends it) with its HTTP
// status, so that the harness can tell what a fault did to renewals: how
// many conflicted, how long each took.
type leaseWrites struct {
	c    *candidate
	next http.RoundTripper
}

func (l leaseWrites) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet || !strings.Contains(req.URL.Path, "/leases") {
		return l.next.RoundTrip(req)
	}
	e := event.Event{Kind: event.LeaseWrite, Sent: event.Now(), Message: req.Method}
	resp, err := l.next.RoundTrip(req)
	if err == nil {
		e.Status = resp.StatusCode
	}
	l.c.emit(e)
	return resp, err
}
