package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	coordinationv1beta1 "k8s.io/api/coordination/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	coordinationv1beta1client "k8s.io/client-go/kubernetes/typed/coordination/v1beta1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
)

// CandidateRenewInterval is how often a LeaseCandidate is renewed when the
// control plane does not ask: often enough that the control plane, which
// drops candidates not renewed for 30 minutes, never drops a live one.
const CandidateRenewInterval = 5 * time.Minute

// candidateBackoff bounds the pause between failed attempts to create or
// renew a LeaseCandidate, or watches of it that end early; a watch that
// lasts candidateHealthyWatch resets it. A renewal that conflicts is tried
// again at once, candidateConflictRetries times in all.
const (
	candidateBackoffFirst    = 500 * time.Millisecond
	candidateBackoffMax      = 30 * time.Second
	candidateHealthyWatch    = 30 * time.Second
	candidateConflictRetries = 5
)

// CacheSyncWaiter waits until what a LeaseCandidate reads from the API
// server is in sync, as an informer factory does.
type CacheSyncWaiter interface {
	WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool
}

// ErrLeaseCandidateNotServed is the cause a LeaseCandidate logs when the API
// server does not serve the LeaseCandidate API, so that coordinated leader
// election cannot work there.
var ErrLeaseCandidateNotServed = errors.New("the API server does not serve LeaseCandidates (coordination.k8s.io/v1beta1); coordinated leader election needs the CoordinatedLeaderElection feature gate on and --runtime-config=coordination.k8s.io/v1beta1=true")

// LeaseCandidate announces this process as a candidate for a Lease in a
// coordinated election (LeaderElectionConfig.Coordinated): it keeps a
// LeaseCandidate object in the API server, renews it when the control plane
// pings it and every CandidateRenewInterval, and recreates it if it is
// deleted. The control plane picks the leader among the candidates and
// writes it into the Lease.
type LeaseCandidate struct {
	client    coordinationv1beta1client.LeaseCandidateInterface
	namespace string
	name      string
	spec      coordinationv1beta1.LeaseCandidateSpec
	clock     clock.Clock

	mu      sync.Mutex
	running bool
	// synced is closed once Run has first seen or created the object.
	synced     chan struct{}
	syncedOnce sync.Once
}

// NewCandidate returns a LeaseCandidate named candidateName in
// candidateNamespace for the Lease targetLease, with the given versions
// and strategy; Run keeps it in the API server. candidateName must be the
// identity of the elector's lock: it is the name the control plane writes
// into the Lease. The CacheSyncWaiter reports when Run has first seen the
// object. The arguments are checked as the API server checks them, so that
// a mistake is an error here rather than a candidate the control plane
// never sees.
func NewCandidate(clientset kubernetes.Interface,
	candidateNamespace string,
	candidateName string,
	targetLease string,
	binaryVersion, emulationVersion string,
	strategy coordinationv1.CoordinatedLeaseStrategy,
) (*LeaseCandidate, CacheSyncWaiter, error) {
	spec := coordinationv1beta1.LeaseCandidateSpec{
		LeaseName:        targetLease,
		BinaryVersion:    binaryVersion,
		EmulationVersion: emulationVersion,
		Strategy:         strategy,
	}
	if err := checkCandidate(clientset, candidateNamespace, candidateName, spec); err != nil {
		return nil, nil, err
	}
	c := &LeaseCandidate{
		client:    clientset.CoordinationV1beta1().LeaseCandidates(candidateNamespace),
		namespace: candidateNamespace,
		name:      candidateName,
		spec:      spec,
		clock:     clock.RealClock{},
		synced:    make(chan struct{}),
	}
	return c, candidateSync{c}, nil
}

// checkCandidate reports every problem with NewCandidate's arguments, by
// the API server's rules for a LeaseCandidate.
func checkCandidate(clientset kubernetes.Interface, namespace, name string, spec coordinationv1beta1.LeaseCandidateSpec) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if nilness.Is(clientset) {
		bad("clientset must not be nil")
	}
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		bad("candidateNamespace %q is not a valid namespace: %s", namespace, strings.Join(msgs, ", "))
	}
	// The control plane writes this name into the Lease as its holder: it
	// must be the elector's identity, such as kube-controller-manager's
	// "hostname_uuid", which the API server accepts.
	if msgs := validation.IsConfigMapKey(name); len(msgs) > 0 {
		bad("candidateName %q is not a valid LeaseCandidate name: %s", name, strings.Join(msgs, ", "))
	}
	if msgs := validation.IsDNS1123Subdomain(spec.LeaseName); len(msgs) > 0 {
		bad("targetLease %q is not a valid Lease name: %s", spec.LeaseName, strings.Join(msgs, ", "))
	}
	binary, err := strictSemver(spec.BinaryVersion)
	if err != nil {
		bad("binaryVersion %q must be a semantic version such as 1.37.0: %v", spec.BinaryVersion, err)
	}
	var emulation *version.Version
	if spec.EmulationVersion != "" {
		emulation, err = strictSemver(spec.EmulationVersion)
		switch {
		case err != nil:
			bad("emulationVersion %q must be a semantic version such as 1.36.0: %v", spec.EmulationVersion, err)
		case binary != nil && binary.LessThan(emulation):
			bad("binaryVersion %q must not be older than emulationVersion %q", spec.BinaryVersion, spec.EmulationVersion)
		}
	}
	noEmulation := emulation == nil || emulation.Major() == 0 && emulation.Minor() == 0 && emulation.Patch() == 0
	switch parts := strings.Split(string(spec.Strategy), "/"); {
	case spec.Strategy == "":
		bad("strategy must be set (for example %q)", coordinationv1.OldestEmulationVersion)
	case len(parts) == 1 && spec.Strategy != coordinationv1.OldestEmulationVersion:
		bad("strategy %q is not supported: a strategy without a prefix must be %q", spec.Strategy, coordinationv1.OldestEmulationVersion)
	case len(parts) > 1:
		if msgs := validation.IsQualifiedName(string(spec.Strategy)); len(msgs) > 0 {
			bad("strategy %q is not a qualified name: %s", spec.Strategy, strings.Join(msgs, ", "))
		}
	case noEmulation && err == nil:
		bad("strategy %q needs an emulationVersion other than 0.0.0", spec.Strategy)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid lease candidate: %s", strings.Join(errs, "; "))
}

// strictSemver parses a semantic version as the API server does: three
// numbers, no leading "v".
func strictSemver(s string) (*version.Version, error) {
	if strings.HasPrefix(s, "v") {
		return nil, errors.New(`no leading "v" allowed`)
	}
	return version.ParseSemantic(s)
}

// Run keeps the LeaseCandidate in the API server until ctx is done. It
// creates it, then follows it by a watch: it renews it when the control
// plane pings it (pingTime after renewTime) and every
// CandidateRenewInterval, and recreates it if it is deleted. Failures are
// logged and retried with a growing pause; an API server that does not
// serve LeaseCandidates is reported as ErrLeaseCandidateNotServed. Run
// does not delete the object when it returns: the control plane collects
// candidates that stopped renewing.
func (c *LeaseCandidate) Run(ctx context.Context) {
	logger := klog.LoggerWithName(klog.FromContext(ctx), "leasecandidate")
	logger = logger.WithValues("leaseCandidate", klog.KRef(c.namespace, c.name), "lease", c.spec.LeaseName)
	ctx = klog.NewContext(ctx, logger)
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()

	pause := candidateBackoffFirst
	for ctx.Err() == nil {
		current, err := c.ensure(ctx)
		if err == nil {
			c.syncedOnce.Do(func() { close(c.synced) })
			started := c.clock.Now()
			err = c.follow(ctx, current)
			if ctx.Err() != nil {
				return
			}
			if err == nil && c.clock.Since(started) >= candidateHealthyWatch {
				// A watch that lasted ended as watches do (the
				// server's timeout): follow again at once.
				pause = candidateBackoffFirst
				continue
			}
		}
		if err != nil {
			logger.Error(err, "Could not keep the lease candidate; retrying", "in", pause)
		} else {
			logger.V(2).Info("The watch of the lease candidate ended early; following it again", "in", pause)
		}
		if !c.sleep(ctx, pause) {
			return
		}
		pause = min(2*pause, candidateBackoffMax)
	}
}

// ensure makes sure the object exists and, if the control plane asked or it
// is due, renews it. It returns the object as it now stands.
func (c *LeaseCandidate) ensure(ctx context.Context) (*coordinationv1beta1.LeaseCandidate, error) {
	current, err := c.client.Get(ctx, c.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return c.create(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("get lease candidate: %w", err)
	}
	if c.due(current) {
		return c.renew(ctx, current)
	}
	return current, nil
}

func (c *LeaseCandidate) create(ctx context.Context) (*coordinationv1beta1.LeaseCandidate, error) {
	now := metav1.NewMicroTime(c.clock.Now())
	candidate := &coordinationv1beta1.LeaseCandidate{
		ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: c.namespace},
		Spec:       c.spec,
	}
	candidate.Spec.RenewTime = &now
	created, err := c.client.Create(ctx, candidate, metav1.CreateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// A create answered "not found" means the resource itself is
		// unknown to the API server, not the object.
		return nil, fmt.Errorf("%w: %v", ErrLeaseCandidateNotServed, err)
	case apierrors.IsAlreadyExists(err):
		return c.client.Get(ctx, c.name, metav1.GetOptions{})
	case err != nil:
		return nil, fmt.Errorf("create lease candidate: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Created the lease candidate")
	return created, nil
}

// due reports whether the object should be renewed now: the control plane
// pinged it after its last renewal, it was never renewed, or its last
// renewal is CandidateRenewInterval old.
func (c *LeaseCandidate) due(candidate *coordinationv1beta1.LeaseCandidate) bool {
	renewed := candidate.Spec.RenewTime
	if renewed == nil {
		return true
	}
	if ping := candidate.Spec.PingTime; ping != nil && ping.After(renewed.Time) {
		return true
	}
	return !c.clock.Now().Before(renewed.Add(CandidateRenewInterval))
}

// renew writes a fresh renewTime over current. The write is conditional on
// current's resourceVersion; on a conflict it reads the object again and
// writes once more.
func (c *LeaseCandidate) renew(ctx context.Context, current *coordinationv1beta1.LeaseCandidate) (*coordinationv1beta1.LeaseCandidate, error) {
	for attempt := 1; ; attempt++ {
		next := current.DeepCopy()
		renewed := c.clock.Now()
		if ping := next.Spec.PingTime; ping != nil && ping.After(renewed) {
			// The control plane pinged by a clock ahead of ours, and
			// counts the ping answered only by a renewal not before it.
			renewed = ping.Time
		}
		stamp := metav1.NewMicroTime(renewed)
		next.Spec.RenewTime = &stamp
		updated, err := c.client.Update(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			klog.FromContext(ctx).V(4).Info("Renewed the lease candidate")
			return updated, nil
		}
		if !apierrors.IsConflict(err) || attempt == candidateConflictRetries || ctx.Err() != nil {
			return nil, fmt.Errorf("renew lease candidate: %w", err)
		}
		current, err = c.client.Get(ctx, c.name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get lease candidate after a conflict: %w", err)
		}
	}
}

// follow watches the object from current and renews it when it is due. It
// returns nil when the watch ends or the object is deleted, so that Run
// looks at it afresh, and an error when a renewal fails.
func (c *LeaseCandidate) follow(ctx context.Context, current *coordinationv1beta1.LeaseCandidate) error {
	w, err := c.client.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", c.name).String(),
		ResourceVersion: current.ResourceVersion,
	})
	if err != nil {
		return fmt.Errorf("watch lease candidate: %w", err)
	}
	defer w.Stop()
	for {
		timer := c.clock.NewTimer(c.untilDue(current))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C():
			if current, err = c.renew(ctx, current); err != nil {
				return err
			}
			continue
		case ev, ok := <-w.ResultChan():
			timer.Stop()
			if !ok {
				return nil
			}
			next, isCandidate := ev.Object.(*coordinationv1beta1.LeaseCandidate)
			switch {
			case ev.Type == watch.Error:
				return fmt.Errorf("watch lease candidate: %w", apierrors.FromObject(ev.Object))
			case !isCandidate || next == nil || next.Name != c.name:
				continue
			case ev.Type == watch.Deleted:
				klog.FromContext(ctx).Info("The lease candidate was deleted; creating it again")
				return nil
			}
			current = next
			if c.due(current) {
				if current, err = c.renew(ctx, current); err != nil {
					return err
				}
			}
		}
	}
}

// untilDue is how long until current is due for its periodic renewal.
func (c *LeaseCandidate) untilDue(current *coordinationv1beta1.LeaseCandidate) time.Duration {
	if current.Spec.RenewTime == nil {
		return 0
	}
	return max(current.Spec.RenewTime.Add(CandidateRenewInterval).Sub(c.clock.Now()), 0)
}

func (c *LeaseCandidate) sleep(ctx context.Context, d time.Duration) bool {
	timer := c.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C():
		return true
	}
}

// candidateSync is the CacheSyncWaiter of a LeaseCandidate. Like an
// informer factory that was not started, it reports nothing and returns at
// once before Run is called; once Run runs, it waits for Run's first look
// at the object.
type candidateSync struct{ c *LeaseCandidate }

// WaitForCacheSync waits until Run has first seen or created the object, or
// stopCh is closed, and reports which it was.
func (s candidateSync) WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool {
	s.c.mu.Lock()
	running := s.c.running
	s.c.mu.Unlock()
	if !running {
		return map[reflect.Type]bool{}
	}
	key := reflect.TypeOf(&coordinationv1beta1.LeaseCandidate{})
	select {
	case <-s.c.synced:
		return map[reflect.Type]bool{key: true}
	case <-stopCh:
		select {
		case <-s.c.synced:
			return map[reflect.Type]bool{key: true}
		default:
			return map[reflect.Type]bool{key: false}
		}
	}
}
