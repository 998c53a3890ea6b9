package fence

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// TestStampCarriesTheTerm: inside OnStartedLeading's context Stamp writes
// the term the Lease holds; outside it, it refuses with ErrNoTerm.
func TestStampCarriesTheTerm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := electiontest.New("istio-system", "istio-leader")
	replica, err := e.Start(ctx, e.Config("a", ""), false)
	if err != nil {
		t.Fatal(err)
	}
	term, err := replica.WaitLeading(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"keep": "me"}}}
	if err := Stamp(term, cm); err != nil {
		t.Fatalf("Stamp in the leading context: %v", err)
	}
	if got, want := cm.Annotations[TermAnnotation], termOf(t, ctx, e); got != want || cm.Annotations["keep"] != "me" {
		t.Fatalf("annotations %v; want %s = %q beside the others", cm.Annotations, TermAnnotation, want)
	}
	if err := Stamp(context.Background(), cm); !errors.Is(err, ErrNoTerm) {
		t.Fatalf("Stamp outside a term: %v, want ErrNoTerm", err)
	}
	var nilMap *corev1.ConfigMap
	if err := Stamp(term, nilMap); err == nil {
		t.Fatal("Stamp of a nil object: no error")
	}
	cancel()
	<-replica.Done()
}

// termOf reads the election's Lease as a bystander and returns its term
// as the policy writes it: <uid>/<leaseTransitions>/<holder>.
func termOf(t *testing.T, ctx context.Context, e *electiontest.Election) string {
	t.Helper()
	lock := e.Lock("bystander", "")
	record, _, err := lock.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _, uid := lock.TermObject()
	return string(uid) + "/" + strconv.Itoa(record.LeaderTransitions) + "/" + record.HolderIdentity
}

// TestTermAnnotationWireName pins the annotation's name: a policy installed
// by an earlier version reads this key, and under a renamed one every
// stamped write would look unstamped to it, switching fencing off without a
// word.
func TestTermAnnotationWireName(t *testing.T) {
	if TermAnnotation != "k8sleaderelection.github.io/term" {
		t.Fatalf("TermAnnotation = %q; it is a wire fact: policies already installed read k8sleaderelection.github.io/term", TermAnnotation)
	}
}
