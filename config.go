package k8sleaderelection

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// MinRetryPeriod is the shortest RetryPeriod NewLeaderElector accepts. Each
// follower reads the lock about once per RetryPeriod and each leader writes
// it once per RetryPeriod, so a shorter one mostly loads the API server: at
// 1ms a follower alone would send about a thousand requests a second.
const MinRetryPeriod = 100 * time.Millisecond

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
	if lec.LeaseDuration > MaxLeaseDuration {
		bad("leaseDuration (%v) must be at most MaxLeaseDuration (%v)", lec.LeaseDuration, MaxLeaseDuration)
	}
	if lec.RetryPeriod > 0 && lec.RetryPeriod < MinRetryPeriod {
		bad("retryPeriod (%v) must be at least MinRetryPeriod (%v)", lec.RetryPeriod, MinRetryPeriod)
	}
	if lec.LeaseDuration <= lec.RenewDeadline {
		bad("leaseDuration (%v) must be greater than renewDeadline (%v)", lec.LeaseDuration, lec.RenewDeadline)
	}
	// Compared as floats: retryPeriod*JitterFactor may not fit a Duration.
	if jittered := JitterFactor * float64(lec.RetryPeriod); float64(lec.RenewDeadline) <= jittered {
		bad("renewDeadline (%v) must be greater than retryPeriod*JitterFactor (%v*%v)", lec.RenewDeadline, lec.RetryPeriod, JitterFactor)
	}
	if err := validateRenewPeriod(lec); err != nil {
		errs = append(errs, err)
	}
	if lec.Callbacks.OnStartedLeading == nil {
		bad("Callbacks.OnStartedLeading must not be nil")
	}
	if lec.Callbacks.OnStoppedLeading == nil {
		bad("Callbacks.OnStoppedLeading must not be nil")
	}
	errs = append(errs, validateCoordinated(lec)...)
	for _, f := range nilness.TypedNils(reflect.ValueOf(lec).Elem()) {
		bad("%s must not be a nil %v", f.Name, f.Type)
	}
	if err := validateLock(lec.Lock); err != nil {
		errs = append(errs, err)
	}
	// A priority needs a key to write. A lock without one is most likely a
	// wrapper that embeds Interface and so hides its lock's Key: run, it
	// would hold the lock with the empty key and be preempted by
	// candidates it outranks.
	if name, keyless := keylessLock(lec.Lock); lec.KeyComparison != nil && keyless != nil {
		bad("KeyComparison is set but %s (%T) has no Key: we would compete with the empty key; give %s a Key method (embed k8sresourcelock.Keyed, not Interface, in a wrapper)", name, keyless, name)
	}
	if len(errs) == 0 {
		return nil
	}
	return configError(errs)
}

// keylessLock names the lock whose Key the elector cannot reach: Lock
// itself when it is not Keyed, or the Primary of a MultiLock, since a
// MultiLock's Key is its Primary's. It returns a nil lock when the key is
// reachable, and for a nil lock or half, which other checks report.
func keylessLock(lock rl.Interface) (string, rl.Interface) {
	name := "Lock"
	for !nilness.Is(lock) {
		ml, ok := lock.(*rl.MultiLock)
		if !ok {
			if _, keyed := lock.(rl.Keyed); !keyed {
				return name, lock
			}
			return "", nil
		}
		name, lock = name+"'s Primary", ml.Primary
	}
	return "", nil
}

// validateRenewPeriod checks RenewPeriod against the other timings, once
// they are valid themselves: a period shorter than RetryPeriod would renew
// faster than a polling leader, and one longer than the timings allow would
// let a polling follower see the lease expire under a live leader, or leave
// no retry before RenewDeadline after a failed renewal.
func validateRenewPeriod(lec *LeaderElectionConfig) error {
	period := lec.RenewPeriod
	if period < 0 {
		return fmt.Errorf("renewPeriod (%v) must not be negative (zero derives it from the other timings)", period)
	}
	timingsValid := lec.RetryPeriod >= MinRetryPeriod && lec.LeaseDuration <= MaxLeaseDuration &&
		lec.LeaseDuration > lec.RenewDeadline && float64(lec.RenewDeadline) > JitterFactor*float64(lec.RetryPeriod)
	if period == 0 || !timingsValid {
		return nil
	}
	longest := maxRenewPeriod(lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod)
	if period < lec.RetryPeriod || period > longest {
		return fmt.Errorf("renewPeriod (%v) must be between retryPeriod (%v) and %v, the shortest of leaseDuration/3, renewDeadline/2 and leaseDuration-(2+JitterFactor)*retryPeriod", period, lec.RetryPeriod, longest)
	}
	return nil
}

// validateLock checks that lock can be used: it is set, it says it is fully
// built if it can tell (rl.Validator), and it has an identity. A lock is user
// code: a panic in it is reported as an error.
func validateLock(lock rl.Interface) (err error) {
	if lock == nil {
		return fmt.Errorf("Lock must not be nil")
	}
	if nilness.Is(lock) {
		// The check of typed nils has said so; its methods would panic.
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Lock (%T) panicked while being checked (is it fully built?): %v", lock, r)
		}
	}()
	if v, ok := lock.(rl.Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("Lock: %w", err)
		}
	}
	if lock.Identity() == "" {
		return fmt.Errorf("Lock identity (ResourceLockConfig.Identity) must not be empty")
	}
	_ = lock.Describe()
	return nil
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
