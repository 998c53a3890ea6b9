package prommetrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// registration registers a provider's collectors, one after the other, and
// remembers the first failure and what it registered itself, to undo.
type registration struct {
	registerer prometheus.Registerer
	err        error
	ours       []prometheus.Collector
}

// register registers c under name and returns the collector to report
// into: c, or the compatible collector the registerer already holds. After
// a failure it registers nothing more and returns c, unused.
func register[C prometheus.Collector](r *registration, name string, c C) C {
	if r.err != nil {
		return c
	}
	err := r.tryRegister(c)
	if err == nil {
		r.ours = append(r.ours, c)
		return c
	}
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &already) {
		r.err = fmt.Errorf("prommetrics: register %s: %w", name, err)
		return c
	}
	// The registerer holds a collector with the very same descriptions
	// (name, help, labels); only its kind can still differ, since a
	// description does not say whether it is a gauge or a counter.
	existing, ok := already.ExistingCollector.(C)
	if !ok {
		r.err = fmt.Errorf("prommetrics: register %s: the registerer already holds a %T of that name, and we report into a %T",
			name, already.ExistingCollector, c)
		return c
	}
	return existing
}

// tryRegister registers c; a registerer is user code, and its panic is an
// error here, so that what was registered before is rolled back.
func (r *registration) tryRegister(c prometheus.Collector) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the registerer panicked: %v", p)
		}
	}()
	return r.registerer.Register(c)
}

// rollBack unregisters what the registration registered, so that a failed
// NewProvider leaves the registerer as it found it.
func (r *registration) rollBack() {
	for _, c := range r.ours {
		func() {
			defer func() { _ = recover() }() // a registerer that panics on Register may on Unregister too
			r.registerer.Unregister(c)
		}()
	}
	r.ours = nil
}
