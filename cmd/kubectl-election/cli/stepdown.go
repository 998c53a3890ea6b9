package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	le "github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Defaults and bounds of step-down and handoff.
const (
	defaultOut     = 5 * time.Minute
	defaultTimeout = time.Minute
	maxTimeout     = time.Hour
	// writeAttempts bounds the reads and writes of one request when the
	// holder's renewals keep changing the object under it.
	writeAttempts = 10
	// pollEvery is how often --wait reads the lock.
	pollEvery = time.Second
)

// stepDown is one step-down or handoff the plugin asks for.
type stepDown struct {
	ref     string
	to      string
	out     time.Duration
	timeout time.Duration
	wait    bool
}

func (e *env) stepDownCommand() *cobra.Command {
	sd := stepDown{}
	cmd := &cobra.Command{
		Use:   "step-down NAME|KIND/NAME [--for DURATION]",
		Short: "Ask the leader to hand over to the best other candidate and stay out for a while",
		Long: `Ask the holder of an election to step down: it stops its work, then hands
the lock to the candidate that asked for it (the handoff protocol: its work
stops before the other's starts), or, if none asked, releases it so that the
first follower to see the release takes it at once. It then stays out of the
election for --for, whatever its key, and competes as before afterwards: for
node drains and rollouts.

The plugin writes a request into the lock object (annotation
k8sleaderelection.github.io/step-down); only a holder running
k8sleaderelection with handoffs on (its lock carries a handoff offer)
honours it, within the time its offer names. The request names the holder
and its term and expires after --timeout, so it never acts later or on
another holder. Without --wait=false the command waits for the outcome.`,
		Args: exactlyOne("step-down", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sd.ref = args[0]
			return e.askStepDown(cmd, sd)
		},
	}
	sd.flags(cmd)
	return cmd
}

func (e *env) handoffCommand() *cobra.Command {
	sd := stepDown{}
	cmd := &cobra.Command{
		Use:   "handoff NAME|KIND/NAME --to ID [--for DURATION]",
		Short: "Move leadership to the candidate ID, with zero overlap",
		Long: `Move leadership of an election to the candidate ID. The plugin writes a
request into the lock object naming the holder, its term and ID; ID (a live
k8sleaderelection candidate of this election with handoffs on) asks the
holder for the lock, whatever its key, and the holder stops its work and
then hands the lock over (zero overlap). The holder then stays out of the
election for --for.

The priority rule still holds. If ID's key is lower than the holder's, the
holder stays out for --for and then, competing as before, asks ID for the
lock back. If another live candidate's key outranks ID's, it asks ID for the
lock as soon as ID leads, and the move does not stand; when such a
candidate has already asked the holder (a pending handoff request), the
plugin refuses. If ID does not ask for the lock before the request expires
(--timeout: it is not a live candidate, or runs with DisableHandoff),
nothing changes, and the command says so.`,
		Args: exactlyOne("handoff", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sd.ref = args[0]
			if sd.to == "" {
				return errors.New("handoff needs --to ID: the identity of the candidate to hand the lock to")
			}
			return e.askStepDown(cmd, sd)
		},
	}
	cmd.Flags().StringVar(&sd.to, "to", "", "identity of the candidate to hand the lock to")
	sd.flags(cmd)
	return cmd
}

func (sd *stepDown) flags(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&sd.out, "for", defaultOut, "how long the holder stays out of the election after stepping down (at most 24h)")
	cmd.Flags().DurationVar(&sd.timeout, "timeout", defaultTimeout, "how long the request stands: a holder (or --to candidate) that has not taken it up by then ignores it")
	cmd.Flags().BoolVar(&sd.wait, "wait", true, "wait until the holder has stepped down, or the request has expired")
}

// check names what is wrong with the flags.
func (sd stepDown) check() error {
	if sd.out < 0 || sd.out > le.MaxStepDownOut {
		return fmt.Errorf("--for %v: must be between 0 and %v", sd.out, le.MaxStepDownOut)
	}
	if sd.out%time.Second != 0 {
		return fmt.Errorf("--for %v: must be whole seconds", sd.out)
	}
	if sd.timeout < time.Second || sd.timeout > maxTimeout {
		return fmt.Errorf("--timeout %v: must be between 1s and %v", sd.timeout, maxTimeout)
	}
	return nil
}

// askStepDown checks the election, writes the request and, with --wait,
// reports the outcome.
func (e *env) askStepDown(cmd *cobra.Command, sd stepDown) error {
	if err := sd.check(); err != nil {
		return err
	}
	ns, err := e.scope(cmd, false)
	if err != nil {
		return err
	}
	r, err := e.reader()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	elections, err := r.get(ctx, ns, sd.ref)
	if err != nil {
		return err
	}
	first, err := movable(elections, sd.to)
	if err != nil {
		return err
	}
	now := e.now()
	request := rl.StepDownRequest{
		Holder:      first.Holder,
		Term:        first.Term,
		To:          sd.to,
		ForSeconds:  int(sd.out / time.Second),
		RequestedAt: now.UTC().Format(time.RFC3339),
		ExpiresAt:   now.Add(sd.timeout).UTC().Format(time.RFC3339),
	}
	// A migration's two objects are one election: the holder reads a
	// request from either.
	if err := writeRequest(ctx, r.client, first, request); err != nil {
		return err
	}
	explain(e.streams.Out, first, request, sd.out)
	if !sd.wait {
		return nil
	}
	// The holder may take the request up until it expires, and then
	// takes as long as its offer says to stop its work and hand over.
	within := time.Duration(first.HandoffOffer.WithinSeconds) * time.Second
	waitCtx, cancel := context.WithTimeout(ctx, sd.timeout+within+2*pollEvery)
	defer cancel()
	return awaitOutcome(waitCtx, e.streams.Out, r, first, request)
}

// movable returns the election (one lock object, or the two of a
// migration) that a step-down request can be written into, or says why
// none could stand.
func movable(elections []Election, to string) (Election, error) {
	first := elections[0]
	where := fmt.Sprintf("election %s/%s", first.Namespace, first.Name)
	for _, el := range elections {
		switch {
		case el.Invalid != "":
			return first, fmt.Errorf("%s: the %s record cannot be decoded, so its holder is unknown: %s", where, el.Kind, el.Invalid)
		case el.Holder != first.Holder || el.Term != first.Term:
			return first, fmt.Errorf("%s: its %s names holder %q in term %d but its %s names %q in term %d: the lock is changing hands; try again", where,
				first.Kind, first.Holder, first.Term, el.Kind, el.Holder, el.Term)
		}
	}
	switch {
	case first.Holder == "":
		return first, fmt.Errorf("%s has no holder: there is nobody to step down", where)
	case first.Holder == rl.UnknownLeader:
		return first, fmt.Errorf("%s: holder %q is unknown (a migration whose locks disagree); try again", where, first.Holder)
	case first.Strategy != "":
		return first, fmt.Errorf("%s is a coordinated election (strategy %s): the control plane picks its holder, and a step-down request would be ignored", where, first.Strategy)
	case first.HandoffOffer == nil:
		return first, fmt.Errorf("%s: holder %q makes no handoff offer (it runs client-go's or Istio's elector, or k8sleaderelection with DisableHandoff or Coordinated), so nobody would honour a step-down request; nothing written", where, first.Holder)
	case to == first.Holder:
		return first, fmt.Errorf("%s: %q already holds the lock", where, to)
	case first.SteppedDown != nil:
		out := first.SteppedDown
		return first, fmt.Errorf("%s: %q stepped down and stays out until %s; the lock remembers one such holder, so a new request now would let %q back in early: ask again after that time",
			where, out.Identity, out.Until.UTC().Format(time.RFC3339), out.Identity)
	case first.Handoff != nil && to != "" && first.Handoff.To != to:
		return first, fmt.Errorf("%s: candidate %q (key %q) has asked %q for the lock: its key outranks the holder's, so the holder hands over to it first, and it would not give the lock to %q; nothing written",
			where, first.Handoff.To, first.Handoff.ToKey, first.Holder, to)
	}
	return first, nil
}

// writeRequest writes request into the lock object of el, over the object
// as read, so that a write of anyone else in between makes it read again.
// It refuses if the lock changed hands meanwhile.
func writeRequest(ctx context.Context, client kubernetes.Interface, el Election, request rl.StepDownRequest) error {
	encoded, err := json.Marshal(request)
	if err != nil {
		return fmt.Errorf("encode the step-down request: %w", err)
	}
	kind, ns, name := el.Kind, el.Namespace, el.Name
	for range writeAttempts {
		err := annotate(ctx, client, kind, ns, name, func(current Election, annotations map[string]string) (map[string]string, error) {
			if current.Holder != request.Holder || current.Term != request.Term {
				return nil, fmt.Errorf("election %s/%s changed hands while asking: %s now names %q in term %d, not %q in term %d; nothing written",
					ns, name, kind, current.Holder, current.Term, request.Holder, request.Term)
			}
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[rl.StepDownAnnotationKey] = string(encoded)
			return annotations, nil
		})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("election %s/%s: the %s changed under every one of %d writes; try again", ns, name, kind, writeAttempts)
}

// annotate reads the lock object of one kind, lets change compute its new
// annotations from the election it holds, and updates it. A Conflict is
// returned as the API server's error, for the caller to read again.
func annotate(ctx context.Context, client kubernetes.Interface, kind, ns, name string,
	change func(Election, map[string]string) (map[string]string, error)) error {
	var (
		obj    metav1.Object
		el     Election
		err    error
		update func() error
	)
	switch kind {
	case kindLease:
		leases := client.CoordinationV1().Leases(ns)
		var lease *coordinationv1.Lease
		if lease, err = leases.Get(ctx, name, metav1.GetOptions{}); err == nil {
			obj, el = lease, fromLease(lease, time.Time{})
			update = func() error { _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); return err }
		}
	case kindConfigMap:
		configMaps := client.CoreV1().ConfigMaps(ns)
		var cm *corev1.ConfigMap
		if cm, err = configMaps.Get(ctx, name, metav1.GetOptions{}); err == nil {
			obj = cm
			el, err = fromAnnotated(cm, time.Time{})
			update = func() error { _, err := configMaps.Update(ctx, cm, metav1.UpdateOptions{}); return err }
		}
	case kindEndpoints:
		endpoints := client.CoreV1().Endpoints(ns)
		var ep *corev1.Endpoints
		if ep, err = endpoints.Get(ctx, name, metav1.GetOptions{}); err == nil {
			obj = ep
			el, err = fromAnnotated(ep, time.Time{})
			update = func() error { _, err := endpoints.Update(ctx, ep, metav1.UpdateOptions{}); return err }
		}
	default:
		return fmt.Errorf("kind %q is not a lock kind", kind)
	}
	if obj == nil {
		return apiError("get", kind, ns, name, err)
	}
	if err != nil {
		return err
	}
	annotations, err := change(el, obj.GetAnnotations())
	if err != nil {
		return err
	}
	obj.SetAnnotations(annotations)
	if err := update(); err != nil {
		if apierrors.IsConflict(err) {
			return err
		}
		return apiError("update", kind, ns, name, err)
	}
	return nil
}

// explain says what was asked, who honours it and what the priority rule
// makes of it.
func explain(w io.Writer, el Election, request rl.StepDownRequest, out time.Duration) {
	where := fmt.Sprintf("%s/%s", el.Namespace, el.Name)
	within := el.HandoffOffer.WithinSeconds
	if el.TimeLeft != nil && el.TimeLeft.Duration < 0 {
		fmt.Fprintf(w, "Note: %s's lease ran out %v ago by this machine's clock: it may be gone, and then the request does nothing.\n", el.Holder, -el.TimeLeft.Duration)
	}
	if request.To == "" {
		fmt.Fprintf(w, "Asked %s, holder of %s in term %d, to step down and stay out for %v; the request expires at %s.\n",
			el.Holder, where, el.Term, out, request.ExpiresAt)
		fmt.Fprintf(w, "%s runs k8sleaderelection with handoffs (its offer stands): it takes the request up at once if it watches its lock, at its next renewal if it polls; stops its work; then hands the lock, within %ds, to a candidate that asked for it, or releases it for the first follower to take.\n",
			el.Holder, within)
		return
	}
	fmt.Fprintf(w, "Asked %s, holder of %s in term %d, to hand over to %s and stay out for %v; the request expires at %s.\n",
		el.Holder, where, el.Term, request.To, out, request.ExpiresAt)
	known := slices.Contains(el.Candidates, request.To) || el.Handoff != nil && el.Handoff.To == request.To
	if !known {
		fmt.Fprintf(w, "%s is not among the known candidates (LeaseCandidates, a pending handoff request): it must be a live k8sleaderelection candidate with handoffs on, or nothing changes.\n", request.To)
	}
	fmt.Fprintf(w, "%s asks %s for the lock whatever its key; %s stops its work, then hands over within %ds. If %s's key is below %s's, %s asks for the lock back once its %v out has run; a candidate whose key outranks %s's asks %s for it as soon as %s leads.\n",
		request.To, el.Holder, el.Holder, within, request.To, el.Holder, el.Holder, out, request.To, request.To, request.To)
}

// awaitOutcome reads the lock until the holder of request has stepped down,
// or ctx ends, and says what became of the request.
func awaitOutcome(ctx context.Context, w io.Writer, r reader, before Election, request rl.StepDownRequest) error {
	where := fmt.Sprintf("%s/%s", before.Namespace, before.Name)
	var released *Election
	for {
		el, err := r.getOne(ctx, before.Kind, before.Namespace, before.Name, time.Time{})
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("read election %s to see the outcome: %w", where, err)
		case err == nil && (el.Holder != before.Holder || el.Term != before.Term):
			if el.Holder != "" || request.To != "" {
				return outcome(w, where, el, request)
			}
			// Released: a follower takes it at once; wait a moment to
			// say which.
			if released == nil {
				released = &el
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 2*pollEvery)
				defer cancel()
			}
		}
		select {
		case <-ctx.Done():
			if released != nil {
				return outcome(w, where, *released, request)
			}
			if request.To != "" {
				return fmt.Errorf("%s did not ask %s for the lock of %s before the request expired: it is not a live candidate of this election (or runs with DisableHandoff, or is not ready); nothing changed", request.To, request.Holder, where)
			}
			return fmt.Errorf("%s did not step down from %s before the request expired and its handoff time ran out; nothing changed", request.Holder, where)
		case <-time.After(pollEvery):
		}
	}
}

// outcome reports the lock of where after its holder stepped down.
func outcome(w io.Writer, where string, now Election, request rl.StepDownRequest) error {
	switch {
	case request.To != "" && now.Holder == request.To:
		fmt.Fprintf(w, "%s handed %s over to %s (term %d).\n", request.Holder, where, now.Holder, now.Term)
	case request.To != "" && now.Holder == "":
		return fmt.Errorf("%s released %s instead of handing it to %s", request.Holder, where, request.To)
	case request.To != "":
		return fmt.Errorf("%s went to %s (term %d), not to %s: %s asked for it first (its key outranks the holder's), or took it", where, now.Holder, now.Term, request.To, now.Holder)
	case now.Holder == "":
		fmt.Fprintf(w, "%s stepped down and released %s: the first follower to see it takes it.\n", request.Holder, where)
	default:
		fmt.Fprintf(w, "%s stepped down: %s is held by %s (term %d).\n", request.Holder, where, now.Holder, now.Term)
	}
	return nil
}
