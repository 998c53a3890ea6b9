package crelection

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Option changes what NewManager builds, beyond controller-runtime's
// options and the election config.
type Option func(*settings)

// settings is what the options of one NewManager call ask for.
type settings struct {
	// fencing is set by WithFencing, with the resources in fenced.
	fencing bool
	fenced  []fence.Resource
}

// WithFencing makes the API server refuse the writes of a manager that no
// longer leads. Every create, update and patch of resources by the
// manager's client (and by any client built from GetConfig and
// GetHTTPClient) carries the manager's term in fence.TermAnnotation: the
// term of the Lease the election holds, stamped whatever context the write
// is made with, since a manager leads at most once. A reconcile that
// writes late, after another replica has taken over, thus carries the old
// term, and the policy of package fence (see ApplyFencePolicy) refuses it.
//
// It fails closed. A write of resources before the manager has led, or
// one the transport cannot stamp (a JSON patch; the client is made to send
// JSON, which stamping needs), is refused with an error, never sent
// unfenced; so is one outside the Lease's namespace, which the policy does
// not see. NewManager refuses WithFencing with a lock that is not a
// *k8sresourcelock.LeaseLock (the policy reads the Lease), with resources
// the policy cannot match (none, a subresource, a wildcard), and with
// options.Client.HTTPClient set (the manager's client would write through
// it unstamped). Writes to a subresource (status, scale) are not fenced:
// the API server keeps the stored metadata on them, so no stamp can be
// checked there.
func WithFencing(resources ...fence.Resource) Option {
	return func(s *settings) {
		s.fencing = true
		s.fenced = append(s.fenced, resources...)
	}
}

// settingsOf applies opts, and names those that are nil.
func settingsOf(opts []Option) (settings, []string) {
	var s settings
	var problems []string
	for i, opt := range opts {
		if opt == nil {
			problems = append(problems, fmt.Sprintf("options[%d] is nil", i))
			continue
		}
		opt(&s)
	}
	return s, problems
}

// checkFencing names what keeps the manager's writes from being fenced:
// a lock without a term, resources the policy could not match (checked by
// building the policy itself, as ApplyFencePolicy will), and an HTTP client
// of the caller's for the manager's client, which controller-runtime uses
// instead of the fenced config's and so would send writes unstamped.
func checkFencing(s settings, options *manager.Options, election *k8sleaderelection.LeaderElectionConfig) []string {
	if !s.fencing {
		return nil
	}
	var problems []string
	if options.Client.HTTPClient != nil {
		problems = append(problems, "options.Client.HTTPClient is set, but WithFencing stamps writes in the HTTP client it builds from config, and the manager's client would write through this one unstamped (leave it nil; wrap config's transport instead)")
	}
	lock, ok := election.Lock.(rl.TermLock)
	if !ok || isNil(election.Lock) {
		return append(problems, fmt.Sprintf("WithFencing needs a Lease lock (*k8sresourcelock.LeaseLock), not %T: the fencing policy compares each write's term with the Lease's", election.Lock))
	}
	namespace, name, _ := lock.TermObject()
	if _, _, err := fence.Policy(fence.PolicyOptions{Namespace: namespace, Lease: name, Resources: s.fenced}); err != nil {
		problems = append(problems, "WithFencing: "+err.Error())
	}
	return problems
}

// fencedConfig is config for a manager whose writes of s's resources carry
// t's term, or config itself without WithFencing.
func fencedConfig(config *rest.Config, s settings, t *term) *rest.Config {
	if !s.fencing || config == nil {
		return config
	}
	return fence.ConfigForTerm(config, t.termOf, s.fenced...)
}

// termOf is the term a write of the manager is made in: the one its context
// carries (a reconcile's, in the term), or else this manager's one term,
// once it has led, even after it has ended, so that a late write carries
// it and is refused.
func (t *term) termOf(ctx context.Context) (k8sleaderelection.Term, bool) {
	if term, ok := k8sleaderelection.TermFromContext(ctx); ok {
		return term, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		return k8sleaderelection.Term{}, false
	}
	return k8sleaderelection.TermFromContext(t.ctx)
}
