package k8sleaderelection

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// validate reports every problem with lec at once, each naming its field.
func validate(lec *LeaderElectionConfig) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, d := range []struct {
		name  string
		value time.Duration
	}{{"leaseDuration", lec.LeaseDuration}, {"renewDeadline", lec.RenewDeadline}, {"retryPeriod", lec.RetryPeriod}} {
		if d.value < 1 {
			bad("%s (%v) must be greater than zero", d.name, d.value)
		}
	}
	if lec.LeaseDuration <= lec.RenewDeadline {
		bad("leaseDuration (%v) must be greater than renewDeadline (%v)", lec.LeaseDuration, lec.RenewDeadline)
	}
	if jittered := time.Duration(JitterFactor * float64(lec.RetryPeriod)); lec.RenewDeadline <= jittered {
		bad("renewDeadline (%v) must be greater than retryPeriod*JitterFactor (%v)", lec.RenewDeadline, jittered)
	}
	if lec.Callbacks.OnStartedLeading == nil {
		bad("Callbacks.OnStartedLeading must not be nil")
	}
	if lec.Callbacks.OnStoppedLeading == nil {
		bad("Callbacks.OnStoppedLeading must not be nil")
	}
	if lec.Coordinated {
		bad("Coordinated is set, but coordinated leader election is not supported yet")
	}
	switch lock := reflect.ValueOf(lec.Lock); {
	case lec.Lock == nil:
		bad("Lock must not be nil")
	case lock.Kind() == reflect.Pointer && lock.IsNil():
		bad("Lock must not be a nil %T", lec.Lock)
	case lec.Lock.Identity() == "":
		bad("Lock identity (ResourceLockConfig.Identity) must not be empty")
	}
	if len(errs) == 0 {
		return nil
	}
	return configError(errs)
}

// configError lists every problem found in a LeaderElectionConfig on one line.
type configError []error

func (e configError) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return "invalid leader election config: " + strings.Join(msgs, "; ")
}

func (e configError) Unwrap() []error { return e }
