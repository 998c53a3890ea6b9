package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/group"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// istiodElections are the elections istiod runs, each on its own Lease.
var istiodElections = []string{
	"istio-namespace-controller-election", "istio-clustertrustbundle-controller-election",
	"istio-serviceexport-controller-election", "istio-leader", "istio-gateway-status-leader",
	"istio-status-leader", "istio-analyze-leader", "istio-gateway-deployment",
	"istio-gateway-inferencepool", "istio-node-untaint", "istio-ip-autoallocate",
}

// groupSettle is the groups' Settle in the demo.
const groupSettle = time.Second

// groupLog records who led each election when, from the callbacks, and
// prints each term as it begins.
type groupLog struct {
	out   io.Writer
	start time.Time

	mu       sync.Mutex
	terms    map[string][]groupTerm // by election
	crashed  map[string]bool
	overlaps int
	// closed ends the record: the replicas' shutdown is no step of the
	// script.
	closed bool
}

type groupTerm struct {
	id       string
	from, to time.Duration // to is zero while the term lasts
}

func (l *groupLog) since() time.Duration { return time.Since(l.start).Truncate(100 * time.Millisecond) }

func (l *groupLog) say(format string, args ...any) {
	fmt.Fprintf(l.out, "%6.1fs  %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}

func (l *groupLog) begin(election, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.crashed[id] || l.closed {
		return
	}
	ts := l.terms[election]
	from := ""
	if n := len(ts); n > 0 {
		if ts[n-1].to == 0 {
			l.overlaps++
			l.say("TWO LEADERS: %s starts leading %s while %s leads it", id, election, ts[n-1].id)
		}
		from = " from " + ts[n-1].id
	}
	l.terms[election] = append(ts, groupTerm{id: id, from: l.since()})
	if len(ts) > 0 {
		l.say("%s leads %s%s", id, election, from)
	}
}

func (l *groupLog) end(election, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.endLocked(election, id)
}

func (l *groupLog) endLocked(election, id string) {
	ts := l.terms[election]
	for i := range ts {
		if ts[i].id == id && ts[i].to == 0 {
			ts[i].to = max(l.since(), time.Millisecond)
		}
	}
}

// crash ends id's terms now: a crashed process does no more work, whatever
// its electors still believe.
func (l *groupLog) crash(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crashed[id] = true
	for e := range l.terms {
		l.endLocked(e, id)
	}
}

// loads returns how many elections each member leads, and how many no one
// (or more than one) leads.
func (l *groupLog) loads() (map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, unled := map[string]int{}, 0
	for _, e := range istiodElections {
		ts := l.terms[e]
		if len(ts) == 0 || ts[len(ts)-1].to != 0 {
			unled++
			continue
		}
		n[ts[len(ts)-1].id]++
	}
	return n, unled
}

// waitBalanced waits, at most limit, until every election is led, once,
// by one of live, and the loads differ by at most one, and have stayed so
// for twice the settle; then it prints them, and how long after start they
// came to be.
func (l *groupLog) waitBalanced(ctx context.Context, step string, start time.Time, live []string, limit time.Duration) {
	var since time.Time
	var last string
	for time.Since(start) < limit && ctx.Err() == nil {
		n, unled := l.loads()
		lo, hi, total := len(istiodElections), 0, 0
		var parts []string
		for _, id := range live {
			lo, hi, total = min(lo, n[id]), max(hi, n[id]), total+n[id]
			parts = append(parts, fmt.Sprintf("%s %d", id, n[id]))
		}
		now := strings.Join(parts, ", ")
		ok := unled == 0 && total == len(istiodElections) && hi-lo <= 1
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero() || now != last:
			since = time.Now()
		case time.Since(since) >= 2*groupSettle:
			l.say("balance after %s: %s (max − min %d), %.1fs after it", step, now, hi-lo, since.Sub(start).Seconds())
			return
		}
		last = now
		time.Sleep(100 * time.Millisecond)
	}
	n, unled := l.loads()
	l.say("NOT BALANCED %v after %s: %v, %d elections without one leader", limit, step, n, unled)
}

// waitLed waits, at most limit, until every election is led again, and
// says when.
func (l *groupLog) waitLed(ctx context.Context, step string, start time.Time, limit time.Duration) {
	for time.Since(start) < limit && ctx.Err() == nil {
		if _, unled := l.loads(); unled == 0 {
			l.say("every election led again, %.1fs after %s", time.Since(start).Seconds(), step)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, unled := l.loads()
	l.say("%d elections NOT LED %v after %s", unled, limit, step)
}

// timeline prints, per election, who led it when.
func (l *groupLog) timeline(end time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.out, "\nWho led each election (seconds from the start):")
	width := 0
	for _, e := range istiodElections {
		width = max(width, len(e))
	}
	moves := 0
	for _, e := range istiodElections {
		var parts []string
		for _, t := range l.terms[e] {
			to := t.to
			if to == 0 {
				to = end
			}
			parts = append(parts, fmt.Sprintf("%s %.1f–%.1f", t.id, t.from.Seconds(), to.Seconds()))
		}
		moves += max(len(l.terms[e])-1, 0)
		fmt.Fprintf(l.out, "  %-*s  %s\n", width, e, strings.Join(parts, ", "))
	}
	fmt.Fprintf(l.out, "\n%d moves after the first leaders; two leaders of one election at once: %d times.\n", moves, l.overlaps)
}

// groupReplica is one istiod replica running the eleven elections.
type groupReplica struct {
	id     string
	crash  *faults.Switch
	cancel context.CancelFunc
	done   chan struct{}
}

func startGroupReplica(config *rest.Config, namespace, id string, l *groupLog, logger klog.Logger) *groupReplica {
	r := &groupReplica{id: id, crash: &faults.Switch{}, done: make(chan struct{})}
	restConfig := r.crash.Wrap(config)
	// A replica that leads many elections renews each every RetryPeriod:
	// more than client-go's default 5 requests a second.
	restConfig.QPS, restConfig.Burst = 50, 100
	client := kubernetes.NewForConfigOrDie(restConfig)
	gc := group.Config{
		Name:          "istiod",
		Namespace:     namespace,
		Client:        client.CoordinationV1(),
		Identity:      id,
		Key:           "default",
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		Settle:        groupSettle,
	}
	for _, name := range istiodElections {
		gc.Elections = append(gc.Elections, group.Election{Name: name, Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				l.begin(name, id)
				<-ctx.Done()
				l.end(name, id)
			},
			OnStoppedLeading: func() {},
		}})
	}
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger.WithValues("replica", id)))
	r.cancel = cancel
	go func() {
		defer close(r.done)
		if err := group.Run(ctx, gc); err != nil {
			l.say("%s: %v", id, err)
		}
	}()
	return r
}

// stop ends the replica's Run and waits for it to return.
func (r *groupReplica) stop() {
	r.cancel()
	<-r.done
}

// runGroups runs istiod's eleven elections over three replicas a, b and
// c: d joins, b crashes, c leaves cleanly, and after each step the demo
// prints the balance once it has settled; at the end, who led each
// election when.
func runGroups(ctx context.Context, config *rest.Config, namespace string, out io.Writer) error {
	admin := kubernetes.NewForConfigOrDie(config)
	// Each run starts from no Leases, so that the script plays out the same.
	leases := admin.CoordinationV1().Leases(namespace)
	for _, e := range istiodElections {
		_ = leases.Delete(ctx, e, metav1.DeleteOptions{})
	}
	_ = leases.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: group.GroupLabel + "=istiod"})

	l := &groupLog{out: out, terms: map[string][]groupTerm{}, crashed: map[string]bool{}}
	logger := klog.Background()
	fmt.Fprintf(out, "istiod's %d elections over its replicas (package group), Leases in %s; lease %v, renew deadline %v, retry %v, settle %v.\n\n",
		len(istiodElections), namespace, leaseDuration, renewDeadline, retryPeriod, groupSettle)
	l.start = time.Now()
	replicas := map[string]*groupReplica{}
	live := []string{"a", "b", "c"}
	l.say("a, b and c start")
	for _, id := range live {
		replicas[id] = startGroupReplica(config, namespace, id, l, logger)
	}
	defer func() {
		for _, r := range replicas {
			r.stop()
		}
	}()
	l.waitBalanced(ctx, "a, b and c started", time.Now(), live, 30*time.Second)

	l.say("d joins")
	start := time.Now()
	replicas["d"] = startGroupReplica(config, namespace, "d", l, logger)
	live = append(live, "d")
	l.waitBalanced(ctx, "d joined", start, live, 30*time.Second)

	l.say("b CRASHES (its leases run out; its member Lease after %v)", 2*leaseDuration)
	start = time.Now()
	replicas["b"].crash.Crash()
	l.crash("b")
	l.waitLed(ctx, "b crashed", start, 30*time.Second)
	live = slices.DeleteFunc(live, func(id string) bool { return id == "b" })
	l.waitBalanced(ctx, "b crashed", start, live, 60*time.Second)

	l.say("c leaves cleanly")
	start = time.Now()
	replicas["c"].stop()
	delete(replicas, "c")
	l.say("c's Run returned after %.1fs, its elections handed over", time.Since(start).Seconds())
	live = slices.DeleteFunc(live, func(id string) bool { return id == "c" })
	l.waitBalanced(ctx, "c left", start, live, 30*time.Second)
	if ctx.Err() != nil {
		l.say("interrupted")
	}

	l.say("shutting down: a and d leave")
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	end := l.since()
	for _, r := range replicas {
		r.stop()
	}
	clear(replicas)
	l.timeline(end)
	return nil
}
