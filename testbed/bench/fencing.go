package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
)

// fencingWrites is how many writes each side of the fencing cost makes.
const fencingWrites = 300

// fencingRounds is how many times the Lease changes hands while the window
// is measured.
const fencingRounds = 100

// fencingRows measures what fence's admission policy costs a write (the
// same stamped creates, interleaved, in a namespace the policy binds and in
// one it does not) and the window its parameter cache leaves open (old-term
// writes sent the instant a Lease update returns).
func fencingRows(ctx context.Context, e *env, r *report) error {
	progress("fencing: %d writes with and without the policy, %d Lease changes", fencingWrites, fencingRounds)
	fenced, err := e.namespace(ctx, "fenced")
	if err != nil {
		return err
	}
	plain, err := e.namespace(ctx, "plain")
	if err != nil {
		return err
	}
	const leaseName = "bench-lock"
	holder := "holder"
	leases := e.admin.CoordinationV1().Leases(fenced)
	lease, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName, Namespace: fenced},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseTransitions: new(int32)},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	policy, binding, err := fence.Policy(fence.PolicyOptions{Namespace: fenced, Lease: leaseName, Resources: []fence.Resource{{Resource: "configmaps"}}})
	if err != nil {
		return err
	}
	api := e.admin.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() {
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	}()
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	}()
	seq := 0
	write := func(ns, term string) (time.Duration, error) {
		seq++
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", seq), Namespace: ns,
			Annotations: map[string]string{fence.TermAnnotation: term}}}
		start := time.Now()
		_, err := e.admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return time.Since(start), err
	}
	refused := func(err error) bool { return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) }
	if err := waitFor(30*time.Second, "the fencing policy to be enforced", func() bool {
		_, err := write(fenced, "999999/nobody")
		return refused(err)
	}); err != nil {
		return err
	}

	term := func() string { return fmt.Sprintf("%s/%d/%s", lease.UID, *lease.Spec.LeaseTransitions, holder) }
	var with, without []time.Duration
	for range fencingWrites {
		d, err := write(fenced, term())
		if err != nil {
			return fmt.Errorf("a write in the current term was refused: %w", err)
		}
		with = append(with, d)
		if d, err = write(plain, term()); err != nil {
			return err
		}
		without = append(without, d)
	}
	wm, wp := medianP90(with)
	nm, np := medianP90(without)
	r.addOursOnly("fenced write: latency median, with the policy", "ms", 1000*wm, fencingNote)
	r.addOursOnly("fenced write: latency median, without", "ms", 1000*nm, fencingNote)
	r.addOursOnly("fenced write: latency p90, with the policy", "ms", 1000*wp, fencingNote)
	r.addOursOnly("fenced write: latency p90, without", "ms", 1000*np, fencingNote)
	r.addOursOnly("fenced write: median with / without", "x", wm/nm, fencingNote)

	accepted := 0
	var slowest time.Duration
	for range fencingRounds {
		old := term()
		next := *lease.Spec.LeaseTransitions + 1
		lease.Spec.LeaseTransitions = &next
		if lease, err = leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
			return err
		}
		changed := time.Now()
		_, err := write(fenced, old)
		switch {
		case err == nil:
			accepted++
			slowest = max(slowest, time.Since(changed))
		case !refused(err):
			return errors.Join(errors.New("an old-term write failed otherwise than refused"), err)
		}
	}
	r.addOursOnly("fencing window: old-term writes at once, accepted", "%", 100*float64(accepted)/fencingRounds, fencingNote)
	r.addOursOnly("fencing window: slowest accepted, after the change", "ms", float64(slowest.Microseconds())/1000, fencingNote)
	return nil
}

const fencingNote = "fencing has no upstream counterpart; its rows compare writes with and without the policy, in one run"

// medianP90 returns the median and 90th percentile of ds, in seconds.
func medianP90(ds []time.Duration) (float64, float64) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Seconds(), s[len(s)*9/10].Seconds()
}
