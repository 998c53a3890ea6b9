// Package k8sresourcelock holds the locks a k8sleaderelection.LeaderElector
// competes for: a Lease, a ConfigMap or an Endpoints object that carries a
// LeaderElectionRecord, and MultiLock, which keeps two of them in step while a
// fleet migrates from one kind to another.
//
// A record carries the holder's identity and its key: the value that
// KeyComparison ranks when a candidate decides whether to preempt the holder.
// ConfigMap and Endpoints locks keep the whole record as JSON in the
// LeaderElectionRecordAnnotationKey annotation (the key as "holderKey"); a
// Lease keeps it in its spec and the key in the LeaseHolderKey annotation.
// Both layouts are the ones Istio's fork writes, so the two libraries can share
// one lock. Record times in an annotation are written to the microsecond
// (RFC 3339 with a fraction, which every reader parses), so that two renewals
// within one second differ in their bytes.
package k8sresourcelock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
)

const (
	// LeaderElectionRecordAnnotationKey is the annotation under which
	// ConfigMap and Endpoints locks store the record as JSON.
	LeaderElectionRecordAnnotationKey = "control-plane.alpha.kubernetes.io/leader"

	// HandoffAnnotationKey is the annotation, on every lock kind, that
	// holds the holder's HandoffOffer as JSON.
	HandoffAnnotationKey = "k8sleaderelection.github.io/handoff"
	// HandoffRequestAnnotationKey is the annotation, on every lock kind,
	// that holds a pending HandoffRequest as JSON.
	HandoffRequestAnnotationKey = "k8sleaderelection.github.io/handoff-request"
	// StepDownAnnotationKey is the annotation, on every lock kind, that
	// holds an operator's StepDownRequest as JSON (kubectl election
	// step-down and handoff write it).
	StepDownAnnotationKey = "k8sleaderelection.github.io/step-down"

	// EndpointsResourceLock selects an EndpointsLock in New.
	EndpointsResourceLock = "endpoints"
	// ConfigMapsResourceLock selects a ConfigMapLock in New.
	ConfigMapsResourceLock = "configmaps"
	// LeasesResourceLock selects a LeaseLock in New.
	LeasesResourceLock = "leases"
	// EndpointsLeasesResourceLock selects a MultiLock with an Endpoints
	// primary and a Lease secondary: the first step of a migration from
	// Endpoints to Leases.
	EndpointsLeasesResourceLock = "endpointsleases"
	// ConfigMapsLeasesResourceLock selects a MultiLock with a ConfigMap
	// primary and a Lease secondary: the first step of a migration from
	// ConfigMaps to Leases.
	ConfigMapsLeasesResourceLock = "configmapsleases"
)

// ErrInvalidRecord marks a lock object whose leader record cannot be decoded.
// Get returns it wrapped, together with the raw bytes it could not decode, and
// keeps the object so that a later Update can overwrite the record. Test for
// it with errors.Is.
var ErrInvalidRecord = errors.New("invalid leader election record")

// LeaderElectionRecord is the state of one election as stored in its lock.
// Electors judge expiry by when they saw the record change, never by the
// timestamps in it, so the times are informational.
type LeaderElectionRecord struct {
	// HolderIdentity is the identity of the current leader. Empty means the
	// lock is free: the last holder released it.
	HolderIdentity string `json:"holderIdentity"`
	// HolderKey is the holder's priority key (ResourceLockConfig.Key). It may
	// be empty.
	HolderKey string `json:"holderKey"`
	// LeaseDurationSeconds is how long others wait, after they last saw the
	// record change, before they may take the lock over.
	LeaseDurationSeconds int `json:"leaseDurationSeconds"`
	// AcquireTime is when the current holder took the lock.
	AcquireTime metav1.Time `json:"acquireTime"`
	// RenewTime is when the current holder last renewed the lock.
	RenewTime metav1.Time `json:"renewTime"`
	// LeaderTransitions counts how many times the lock changed hands.
	LeaderTransitions int `json:"leaderTransitions"`
	// Strategy is the coordinated leader election strategy of a Lease.
	Strategy coordinationv1.CoordinatedLeaseStrategy `json:"strategy"`
	// PreferredHolder is the holder a coordinated election asks to take over.
	PreferredHolder string `json:"preferredHolder"`

	// Handoff, when set, is the holder's offer to hand the lock over on
	// request instead of having it taken. It is not part of the JSON record:
	// every lock kind keeps it in the HandoffAnnotationKey annotation,
	// which other libraries' electors leave in place.
	Handoff HandoffOffer `json:"-"`
	// HandoffRequest, when set, asks the holder to hand the lock over. Every
	// lock kind keeps it in the HandoffRequestAnnotationKey annotation.
	HandoffRequest HandoffRequest `json:"-"`
	// StepDown, when set, is an operator's request that the holder give
	// the lock up. Every lock kind keeps it in the StepDownAnnotationKey
	// annotation; electors that know nothing of it leave it in place.
	StepDown StepDownRequest `json:"-"`
}

// HandoffOffer says that a holder hands the lock over when a candidate that
// outranks it asks.
type HandoffOffer struct {
	// Holder is the identity that made the offer. The offer stands only
	// while it is the record's holder: an elector that knows nothing of
	// handoffs leaves the annotation behind when it takes the lock.
	Holder string `json:"holder"`
	// WithinSeconds is how long, after a request is written, the holder
	// may take to stop its work and hand the lock over. A requester that
	// has not been handed the lock by then takes it.
	WithinSeconds int `json:"withinSeconds"`
}

// HandoffRequest asks the holder of one term to hand the lock over.
type HandoffRequest struct {
	// To is the holder asked, and Term the record's LeaderTransitions when
	// asked: the request lapses once the lock has changed hands.
	To   string `json:"to"`
	Term int    `json:"term"`
	// HolderIdentity, HolderKey and LeaseDurationSeconds are the record
	// the holder writes to hand the lock over: the requester's.
	HolderIdentity       string `json:"holderIdentity"`
	HolderKey            string `json:"holderKey"`
	LeaseDurationSeconds int    `json:"leaseDurationSeconds"`
	// OffersWithinSeconds is the requester's own HandoffOffer, zero if it
	// makes none: the holder writes it into the record that hands the lock
	// over, so that a candidate outranking the requester asks it for the
	// lock from the first moment it holds it, instead of taking it.
	OffersWithinSeconds int `json:"offersWithinSeconds,omitempty"`
}

// StepDownRequest asks the holder of one term to give the lock up: to the
// candidate To, or, when To is empty, to the best other candidate it knows.
// An operator writes it (kubectl election step-down and handoff); the
// holder carries it out through the handoff protocol, so that its work
// stops before anyone else's starts, and then stays out of the election
// for ForSeconds.
type StepDownRequest struct {
	// Holder and Term are the holder asked and the record's
	// LeaderTransitions when asked: the request lapses once the lock has
	// changed hands.
	Holder string `json:"holder"`
	Term   int    `json:"term"`
	// To is the candidate to hand the lock to; empty for any.
	To string `json:"to,omitempty"`
	// ForSeconds is how long the holder stays out of the election once
	// it has taken the request up.
	ForSeconds int `json:"forSeconds,omitempty"`
	// RequestedAt and ExpiresAt are RFC 3339 times on the writer's clock:
	// a holder that has not taken the request up by ExpiresAt, on its own
	// clock, ignores it, so that a stale request never acts later.
	RequestedAt string `json:"requestedAt"`
	ExpiresAt   string `json:"expiresAt"`
	// OutUntil is set by the holder that carried the request out, in the
	// record that hands the lock over or releases it: until when, RFC 3339
	// on its clock, Holder stays out of the election. Every elector of
	// this package keeps the annotation in its writes until then, so that
	// a new elector for Holder (a controller that makes one per Run)
	// stays out too.
	OutUntil string `json:"outUntil,omitempty"`
}

// EventRecorder records an event about a lock object. A
// k8s.io/client-go/tools/record.EventRecorder satisfies it.
type EventRecorder interface {
	Eventf(obj runtime.Object, eventType, reason, message string, args ...any)
}

// ResourceLockConfig is what every lock kind knows about its candidate.
type ResourceLockConfig struct {
	// Identity names this candidate; it must be unique among all
	// candidates of one election.
	Identity string
	// Key is this candidate's priority. Another candidate whose
	// KeyComparison ranks it below its own key may take the lock from us.
	Key string
	// EventRecorder is optional; when set, the lock records an event on
	// its object each time this candidate starts or stops leading. A nil
	// pointer in it (a typed nil) is an error of New and Validate.
	EventRecorder EventRecorder
}

// Interface is a lock that a LeaderElector competes for. Get, Create and
// Update are called from one goroutine at a time. It has the methods of
// client-go's resourcelock.Interface, so that a lock written for upstream
// (controller-runtime's fake, a test's own) is one here too; a lock that
// also has a key is Keyed.
type Interface interface {
	// Get reads the lock and returns its record and the raw bytes the
	// record was decoded from; the elector compares the bytes to notice a
	// renewal. An absent object gives a NotFound API error; an undecodable
	// record gives an error wrapping ErrInvalidRecord.
	Get(ctx context.Context) (*LeaderElectionRecord, []byte, error)

	// Create creates the lock object holding ler.
	Create(ctx context.Context, ler LeaderElectionRecord) error

	// Update writes ler over the object last read or written, so that a
	// concurrent change by anyone else fails with a Conflict.
	Update(ctx context.Context, ler LeaderElectionRecord) error

	// RecordEvent records an event about this candidate on the lock object.
	RecordEvent(string)

	// Identity returns this candidate's identity.
	Identity() string

	// Describe names the lock for logs, as "namespace/name".
	Describe() string
}

// Keyed is a lock that carries its candidate's priority key, as every lock of
// Istio's fork does. Every lock kind of this package is Keyed, and New
// returns one, so that a caller can ask it for the key. The elector asks its
// Lock for Key when it is Keyed; a lock that is not (one written against
// client-go's Interface) competes with the empty key, which KeyComparison
// must rank anyway.
type Keyed interface {
	Interface
	// Key returns this candidate's priority key.
	Key() string
}

// Versioned is implemented by a lock whose object the API server versions.
// ResourceVersion returns the resourceVersion of the object as the lock last
// read or wrote it (for a MultiLock, of both objects), or "" before it has
// read one. The API server changes it on every write, so an elector that
// compares it notices every write, even one that leaves the record's bytes
// as they were. A lock without it is compared by the bytes Get returns,
// which tell two renewals apart only by their times: this package writes
// them to the microsecond, but a record written by another library (whole
// seconds, in an annotation) may repeat its bytes within one second. Every
// lock kind of this package has it.
type Versioned interface {
	ResourceVersion() string
}

// TermLock is implemented by a lock whose record an admission policy can
// compare a write's leader term with, which takes an object whose fields the
// policy can read: a Lease (see package fence). A ConfigMap's or an
// Endpoints' record is a JSON string in an annotation, and a MultiLock keeps
// two objects, so they have no term. TermObject returns the namespace and
// name of the object, and its UID as the lock last read or wrote it: the
// API server gives each object a new UID when it is created, so a Lease
// deleted and created again (by hand, by the garbage collector, from a
// backup) never passes for the one before. The UID is "" before the lock
// has read the object, after a read found it absent, and from a server (a
// fake clientset) that assigns none.
type TermLock interface {
	TermObject() (namespace, name string, uid types.UID)
}

// Validator is implemented by a lock that can tell whether it is fully built.
// Validate returns an error naming what is missing or wrong (a nil client, an
// empty name, a nil half of a MultiLock), so that NewLeaderElector reports a
// badly built lock at once instead of failing on first use. Every lock kind
// of this package has it.
type Validator interface {
	Validate() error
}

// New returns a lock of lockType (one of the *ResourceLock constants) on the
// object ns/name.
func New(lockType string, ns string, name string, coreClient corev1client.CoreV1Interface, coordinationClient coordinationv1client.CoordinationV1Interface, rlc ResourceLockConfig) (Keyed, error) {
	return NewWithLabels(lockType, ns, name, coreClient, coordinationClient, rlc, nil)
}

// NewWithLabels is New, and a Lease it creates or takes over also gets labels.
// Only the given labels are written; others on the Lease stay. ConfigMap and
// Endpoints locks ignore labels.
func NewWithLabels(lockType string, ns string, name string, coreClient corev1client.CoreV1Interface, coordinationClient coordinationv1client.CoordinationV1Interface, rlc ResourceLockConfig, labels map[string]string) (Keyed, error) {
	if ns == "" {
		return nil, fmt.Errorf("%s lock %q: namespace must not be empty", lockType, name)
	}
	if name == "" {
		return nil, fmt.Errorf("%s lock in namespace %q: name must not be empty", lockType, ns)
	}
	meta := metav1.ObjectMeta{Namespace: ns, Name: name}
	needCore := lockType == ConfigMapsResourceLock || lockType == EndpointsResourceLock ||
		lockType == ConfigMapsLeasesResourceLock || lockType == EndpointsLeasesResourceLock
	needLeases := lockType == LeasesResourceLock ||
		lockType == ConfigMapsLeasesResourceLock || lockType == EndpointsLeasesResourceLock
	if needCore && isNilValue(coreClient) {
		return nil, fmt.Errorf("%s lock %s/%s: coreClient must not be nil", lockType, ns, name)
	}
	if needLeases && isNilValue(coordinationClient) {
		return nil, fmt.Errorf("%s lock %s/%s: coordinationClient must not be nil", lockType, ns, name)
	}
	if rlc.EventRecorder != nil && isNilValue(rlc.EventRecorder) {
		return nil, fmt.Errorf("%s lock %s/%s: EventRecorder must not be a nil %T", lockType, ns, name, rlc.EventRecorder)
	}
	lease := func() *LeaseLock {
		return &LeaseLock{LeaseMeta: meta, Client: coordinationClient, LockConfig: rlc, Labels: labels}
	}
	switch lockType {
	case LeasesResourceLock:
		return lease(), nil
	case ConfigMapsResourceLock:
		return &ConfigMapLock{ConfigMapMeta: meta, Client: coreClient, LockConfig: rlc}, nil
	case EndpointsResourceLock:
		return &EndpointsLock{EndpointsMeta: meta, Client: coreClient, LockConfig: rlc}, nil
	case ConfigMapsLeasesResourceLock:
		return &MultiLock{
			Primary:   &ConfigMapLock{ConfigMapMeta: meta, Client: coreClient, LockConfig: rlc},
			Secondary: lease(),
		}, nil
	case EndpointsLeasesResourceLock:
		return &MultiLock{
			Primary:   &EndpointsLock{EndpointsMeta: meta, Client: coreClient, LockConfig: rlc},
			Secondary: lease(),
		}, nil
	default:
		return nil, fmt.Errorf("lock type %q is not one of %q, %q, %q, %q, %q", lockType,
			LeasesResourceLock, ConfigMapsResourceLock, EndpointsResourceLock,
			ConfigMapsLeasesResourceLock, EndpointsLeasesResourceLock)
	}
}

// NewFromKubeconfig is New with clients built from kubeconfig. Their request
// timeout is max(renewDeadline/2, 1s), so that one hung request cannot use up
// a whole renewal; watches use a client without it, which would end every
// watch. kubeconfig itself is not changed. The Lease locks built from one
// kubeconfig (the same *rest.Config) share one RequestsInFlight, as they
// share client-go's connection.
func NewFromKubeconfig(lockType string, ns string, name string, rlc ResourceLockConfig, kubeconfig *rest.Config, renewDeadline time.Duration) (Keyed, error) {
	if kubeconfig == nil {
		return nil, fmt.Errorf("%s lock %s/%s: kubeconfig must not be nil", lockType, ns, name)
	}
	config := rest.AddUserAgent(rest.CopyConfig(kubeconfig), "leader-election")
	// Watches get a client of their own, without the timeout: it would end
	// every watch after it.
	watchClient, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("%s lock %s/%s: build client: %w", lockType, ns, name, err)
	}
	config = rest.CopyConfig(config)
	config.Timeout = clientTimeout(renewDeadline)
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("%s lock %s/%s: build client: %w", lockType, ns, name, err)
	}
	lock, err := New(lockType, ns, name, client.CoreV1(), client.CoordinationV1(), rlc)
	if err != nil {
		return nil, err
	}
	setWatchClient(lock, watchClient)
	shareGate(lock, kubeconfig)
	return lock, nil
}

// shareGate makes the Lease locks among lock (itself, or a half of a
// MultiLock) pass the gate named by key: locks built from one kubeconfig
// have a client each, but client-go gives them one connection.
func shareGate(lock Interface, key any) {
	switch l := lock.(type) {
	case *LeaseLock:
		l.gateKey = key
	case *MultiLock:
		shareGate(l.Primary, key)
		shareGate(l.Secondary, key)
	}
}

// setWatchClient makes lock, and each half of a MultiLock, watch with
// client.
func setWatchClient(lock Interface, client kubernetes.Interface) {
	switch l := lock.(type) {
	case *LeaseLock:
		l.watchClient = client.CoordinationV1()
	case *ConfigMapLock:
		l.watchClient = client.CoreV1()
	case *EndpointsLock:
		l.watchClient = client.CoreV1()
	case *MultiLock:
		setWatchClient(l.Primary, client)
		setWatchClient(l.Secondary, client)
	}
}

// clientTimeout bounds each request of an elector's client: half a renewal,
// so that a renewal has time for a retry, but never under a second.
func clientTimeout(renewDeadline time.Duration) time.Duration {
	return max(renewDeadline/2, time.Second)
}

// validateMeta names what is missing from the object a lock of kind is built
// on, its client, and what is wrong with its config.
func validateMeta(kind string, meta metav1.ObjectMeta, client any, config ResourceLockConfig) error {
	var errs []error
	if meta.Namespace == "" {
		errs = append(errs, fmt.Errorf("%s lock %q: namespace must not be empty", kind, meta.Name))
	}
	if meta.Name == "" {
		errs = append(errs, fmt.Errorf("%s lock in namespace %q: name must not be empty", kind, meta.Namespace))
	}
	if isNilValue(client) {
		errs = append(errs, fmt.Errorf("%s lock %s/%s: Client must not be nil", kind, meta.Namespace, meta.Name))
	}
	// A typed nil recorder is set, so it would be used, and its Eventf
	// would panic on the first event.
	if recorder := config.EventRecorder; recorder != nil && isNilValue(recorder) {
		errs = append(errs, fmt.Errorf("%s lock %s/%s: LockConfig.EventRecorder must not be a nil %T", kind, meta.Namespace, meta.Name, recorder))
	}
	return joinErrors(errs)
}

// joinErrors is errors.Join on one line: nil for no errors, else each
// message separated by "; ", all still matched by errors.Is and errors.As.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return joinedErrors(errs)
}

type joinedErrors []error

func (e joinedErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedErrors) Unwrap() []error { return e }

// isNil reports whether lock is nil or a nil pointer in an interface, whose
// methods would panic.
func isNil(lock Interface) bool { return isNilValue(lock) }

// isNilValue reports whether v is nil, or a typed nil whose methods would
// panic (a client whose constructor failed, say).
func isNilValue(v any) bool { return nilness.Is(v) }
