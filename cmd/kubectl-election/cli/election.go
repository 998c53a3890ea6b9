package cli

import (
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Kinds of lock object an election can live in, as the output names them.
const (
	kindLease     = "Lease"
	kindConfigMap = "ConfigMap"
	kindEndpoints = "Endpoints"
)

// errNotElection marks an object that exists but holds no election: a
// ConfigMap or Endpoints without the record annotation.
var errNotElection = errors.New("not an election")

// Election is one election as the plugin prints it: what its lock object
// says, read with the library's own decoding, so that ours, upstream's and
// Istio's fork's records read alike.
type Election struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Holder is empty while the lock is free.
	Holder string `json:"holder"`
	// Key is the holder's priority key: the Lease's leader.istio.io/holder-key
	// annotation, or the record's holderKey. Upstream's electors write none.
	Key string `json:"key"`
	// Term is leaseTransitions (Lease) or leaderTransitions (record): how
	// many times the lock changed hands, which numbers the holder's term.
	Term int `json:"term"`
	// FenceTerm is the term as package fence stamps writes with it
	// ("<term>/<holder>"); Leases only, since only a Lease can be a
	// fencing policy's parameter.
	FenceTerm            string      `json:"fenceTerm,omitempty"`
	LeaseDurationSeconds int         `json:"leaseDurationSeconds"`
	AcquireTime          metav1.Time `json:"acquireTime"`
	RenewTime            metav1.Time `json:"renewTime"`
	// TimeLeft is renewTime + leaseDurationSeconds - now. renewTime is
	// stamped by the holder's clock and now is this machine's, so skew
	// between them shifts it; electors never judge expiry this way (they
	// time how long the record has gone unchanged on their own clock).
	// Negative once the lease has run out; absent while the lock is free.
	TimeLeft *metav1.Duration `json:"timeLeft,omitempty"`
	// Strategy and PreferredHolder are set by coordinated election.
	Strategy        string `json:"strategy,omitempty"`
	PreferredHolder string `json:"preferredHolder,omitempty"`
	// HandoffOffer is the holder's offer to hand over on request, if it
	// made one.
	HandoffOffer *HandoffOffer `json:"handoffOffer,omitempty"`
	// Handoff is a pending request for the holder to hand over.
	Handoff *Handoff `json:"handoff,omitempty"`
	// StepDown is an operator's request, pending, that the holder step
	// down (kubectl election step-down or handoff).
	StepDown *StepDown `json:"stepDown,omitempty"`
	// SteppedDown names the holder that stepped down at an operator's
	// request and stays out of the election until the time given.
	SteppedDown *SteppedDown `json:"steppedDown,omitempty"`
	// Candidates are the LeaseCandidates naming this Lease, where the API
	// server serves them.
	Candidates []string `json:"candidates,omitempty"`
	// Invalid says why the record annotation could not be decoded.
	Invalid string `json:"invalid,omitempty"`
	// Annotations are the lock object's annotations, for describe.
	Annotations map[string]string `json:"-"`
}

// HandoffOffer is the holder's standing offer to hand the lock over.
type HandoffOffer struct {
	WithinSeconds int `json:"withinSeconds"`
}

// Handoff is a request, pending in the holder's term, to hand the lock over.
type Handoff struct {
	// To is the candidate the lock is asked for, with its key.
	To    string `json:"to"`
	ToKey string `json:"toKey"`
	// WithinSeconds is the holder's offer: the requester takes the lock
	// this long after it wrote the request, handed over or not. The
	// request carries no time of its own (the requester times it on its
	// own clock), so the deadline is known only relative to the write.
	WithinSeconds int `json:"withinSeconds"`
	// Deadline is set by watch: the time it saw the request appear plus
	// WithinSeconds, on this machine's clock.
	Deadline *metav1.Time `json:"deadline,omitempty"`
}

// StepDown is an operator's pending request that the holder step down.
type StepDown struct {
	// To is the candidate to hand over to; empty for the best other one.
	To string `json:"to,omitempty"`
	// ForSeconds is how long the holder then stays out of the election.
	ForSeconds int `json:"forSeconds"`
	// RequestedAt and ExpiresAt are as the request says, on the clock of
	// the machine that wrote it.
	RequestedAt string `json:"requestedAt"`
	ExpiresAt   string `json:"expiresAt"`
}

// SteppedDown is a holder that stepped down and stays out until Until (on
// its own clock).
type SteppedDown struct {
	Identity string      `json:"identity"`
	Until    metav1.Time `json:"until"`
}

// fromLease reads the election a Lease holds. Every Lease is one, even a
// free Lease without annotations.
func fromLease(lease *coordinationv1.Lease, now time.Time) Election {
	record := rl.LeaseToLeaderElectionRecord(lease)
	e := fromRecord(kindLease, lease.ObjectMeta, record, now)
	if record.HolderIdentity != "" {
		e.FenceTerm = le.Term{UID: lease.UID, Holder: record.HolderIdentity, Transitions: int32(record.LeaderTransitions)}.String()
	}
	return e
}

// fromAnnotated reads the election a ConfigMap or Endpoints holds in its
// record annotation. An object without it is no election (errNotElection);
// one whose annotation does not decode is an election with Invalid set.
func fromAnnotated(obj runtime.Object, now time.Time) (Election, error) {
	var (
		kind string
		meta metav1.ObjectMeta
		lock rl.Watcher
	)
	// The locks' Apply is the library's decoding of an object it did not
	// read itself: the same code its electors run on every watch event.
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		kind, meta = kindConfigMap, o.ObjectMeta
		lock = &rl.ConfigMapLock{ConfigMapMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name}}
	case *corev1.Endpoints:
		kind, meta = kindEndpoints, o.ObjectMeta
		lock = &rl.EndpointsLock{EndpointsMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name}}
	default:
		return Election{}, fmt.Errorf("%T is not a lock object", obj)
	}
	if _, ok := meta.Annotations[rl.LeaderElectionRecordAnnotationKey]; !ok {
		return Election{}, fmt.Errorf("%s %s/%s is %w: it has no %s annotation", kind, meta.Namespace, meta.Name, errNotElection, rl.LeaderElectionRecordAnnotationKey)
	}
	record, _, err := lock.Apply(watch.Event{Type: watch.Modified, Object: obj})
	if errors.Is(err, rl.ErrInvalidRecord) {
		e := Election{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Annotations: meta.Annotations, Invalid: err.Error()}
		return e, nil
	}
	if err != nil {
		return Election{}, err
	}
	return fromRecord(kind, meta, record, now), nil
}

// fromRecord fills an Election from a decoded record.
func fromRecord(kind string, meta metav1.ObjectMeta, r *rl.LeaderElectionRecord, now time.Time) Election {
	e := Election{
		Kind:                 kind,
		Namespace:            meta.Namespace,
		Name:                 meta.Name,
		Holder:               r.HolderIdentity,
		Key:                  r.HolderKey,
		Term:                 r.LeaderTransitions,
		LeaseDurationSeconds: r.LeaseDurationSeconds,
		AcquireTime:          r.AcquireTime,
		RenewTime:            r.RenewTime,
		Strategy:             string(r.Strategy),
		PreferredHolder:      r.PreferredHolder,
		Annotations:          meta.Annotations,
	}
	if r.HolderIdentity != "" && !r.RenewTime.IsZero() {
		left := r.RenewTime.Add(durations.Seconds(r.LeaseDurationSeconds)).Sub(now)
		e.TimeLeft = &metav1.Duration{Duration: left.Truncate(time.Second)}
	}
	if offer, stands := le.StandingOffer(r); stands {
		e.HandoffOffer = &HandoffOffer{WithinSeconds: offer.WithinSeconds}
	}
	if step, pending := le.PendingStepDown(r, now); pending {
		e.StepDown = &StepDown{To: step.To, ForSeconds: step.ForSeconds, RequestedAt: step.RequestedAt, ExpiresAt: step.ExpiresAt}
	}
	if who, until, out := le.SteppedDown(r, now); out {
		e.SteppedDown = &SteppedDown{Identity: who, Until: metav1.NewTime(until)}
	}
	if request, pending := le.PendingHandoff(r); pending {
		e.Handoff = &Handoff{To: request.HolderIdentity, ToKey: request.HolderKey}
		if e.HandoffOffer != nil {
			e.Handoff.WithinSeconds = e.HandoffOffer.WithinSeconds
		}
	}
	return e
}
