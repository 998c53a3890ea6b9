package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// env is what every scenario runs against.
type env struct {
	config     *rest.Config
	admin      kubernetes.Interface
	seq        int
	namespaces []string
}

// namespace makes a fresh namespace, so that scenarios never share a lock;
// cleanup deletes it.
func (e *env) namespace(ctx context.Context, prefix string) (string, error) {
	e.seq++
	name := fmt.Sprintf("bench-%s-%d-%d", prefix, time.Now().Unix()%100000, e.seq)
	_, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err == nil {
		e.namespaces = append(e.namespaces, name)
	}
	return name, err
}

// cleanup deletes the namespaces made, and with them every lock, so that a
// run against a real cluster leaves nothing behind.
func (e *env) cleanup() {
	for _, ns := range e.namespaces {
		_ = e.admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	}
}

// client builds a client without throttling; counter, if set, counts its
// requests, and crash, if set, can kill it.
func (e *env) client(counter *requestCounter, crash *faults.Switch) kubernetes.Interface {
	config := rest.CopyConfig(e.config)
	config.QPS = -1
	if counter != nil {
		config = counter.wrap(config)
	}
	if crash != nil {
		config = crash.Wrap(config)
	}
	return kubernetes.NewForConfigOrDie(config)
}

// waitFor polls cond until it holds, or fails after limit.
func waitFor(limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// loadResult is requests per second by HTTP method, for the leader and for
// a follower.
type loadResult struct{ leader, follower map[string]float64 }

// measureLoad runs a leader and a follower of lib on one Lease for window
// and counts each one's requests.
func measureLoad(ctx context.Context, e *env, lib library, window time.Duration) (loadResult, error) {
	ns, err := e.namespace(ctx, "load-"+lib.name)
	if err != nil {
		return loadResult{}, err
	}
	var rec tenures.Recorder
	counters := map[string]*requestCounter{"a": {}, "b": {}}
	candidates := map[string]*candidate{}
	defer func() {
		for _, c := range candidates {
			c.stop(false)
		}
	}()
	for _, id := range []string{"a", "b"} {
		candidates[id] = startCandidate(lib, candidateSpec{
			client: e.client(counters[id], nil), namespace: ns, lock: "load", id: id,
			timings: fast, release: true, onStarted: rec.OnStartedLeading(id, ""),
		})
		if id == "a" {
			if err := waitFor(fast.lease, "a leads", func() bool { return len(rec.Leaders()) == 1 }); err != nil {
				return loadResult{}, err
			}
		}
	}
	time.Sleep(2 * fast.retry)
	for _, c := range counters {
		c.take()
	}
	time.Sleep(window)
	leaders := rec.Leaders()
	if len(leaders) != 1 || len(rec.All()) != 1 {
		return loadResult{}, fmt.Errorf("%s: leadership changed during the load run: %v", lib.name, rec.All())
	}
	rate := func(counts map[string]int) map[string]float64 {
		out := map[string]float64{}
		for method, n := range counts {
			out[method] = float64(n) / window.Seconds()
		}
		return out
	}
	follower := "b"
	if leaders[0] == "b" {
		follower = "a"
	}
	return loadResult{leader: rate(counters[leaders[0]].take()), follower: rate(counters[follower].take())}, nil
}

// measureFailover times, runs times, how long after the leader stops
// another candidate leads: the leader releases the lock, or crashes.
func measureFailover(ctx context.Context, e *env, lib library, crash bool, runs int) ([]time.Duration, error) {
	ns, err := e.namespace(ctx, "failover-"+lib.name)
	if err != nil {
		return nil, err
	}
	var out []time.Duration
	for run := range runs {
		var rec tenures.Recorder
		lock := fmt.Sprintf("failover-%d", run)
		kill := &faults.Switch{}
		spec := func(id string, client kubernetes.Interface) candidateSpec {
			return candidateSpec{client: client, namespace: ns, lock: lock, id: id,
				timings: fast, release: true, onStarted: rec.OnStartedLeading(id, "")}
		}
		a := startCandidate(lib, spec("a", e.client(nil, kill)))
		a.crash = kill
		if err := waitFor(fast.lease, "a leads", func() bool { return len(rec.Leaders()) == 1 }); err != nil {
			a.stop(false)
			return nil, err
		}
		b := startCandidate(lib, spec("b", e.client(nil, nil)))
		time.Sleep(2*fast.retry + time.Duration(run)*fast.retry/time.Duration(runs)) // vary the phase
		stoppedAt := time.Now()
		a.stop(crash)
		err := waitFor(3*fast.lease, "b takes over", func() bool { return len(rec.StartedAfter(stoppedAt)) > 0 })
		if err == nil {
			out = append(out, rec.StartedAfter(stoppedAt)[0].Start.Sub(stoppedAt))
		}
		b.stop(false)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// measurePreemption times, runs times, how long a higher-key candidate
// takes to lead once started, and how long the lower-key leader it preempts
// leads on beside it (its work returns at once when told to stop). By
// default that is a handoff; steal switches handoffs off.
func measurePreemption(ctx context.Context, e *env, runs int, steal bool) (toLead, overlap []time.Duration, err error) {
	ns, err := e.namespace(ctx, "preempt")
	if err != nil {
		return nil, nil, err
	}
	rank := map[string]int{"canary": 1, "stable": 2}
	for run := range runs {
		var rec tenures.Recorder
		lock := fmt.Sprintf("preempt-%d", run)
		spec := func(id string) candidateSpec {
			return candidateSpec{client: e.client(nil, nil), namespace: ns, lock: lock, id: id, key: id,
				timings: fast, release: true, onStarted: rec.OnStartedLeading(id, id), disableHandoff: steal,
				keyComparison: func(holder string) bool { return rank[id] > rank[holder] }}
		}
		low := startCandidate(ours, spec("canary"))
		if err := waitFor(fast.lease, "canary leads", func() bool { return len(rec.Leaders()) == 1 }); err != nil {
			low.stop(false)
			return nil, nil, err
		}
		time.Sleep(fast.retry + time.Duration(run)*fast.retry/time.Duration(runs)) // vary the phase against renewals
		startedAt := time.Now()
		high := startCandidate(ours, spec("stable"))
		err := waitFor(fast.renew, "canary steps down", func() bool { return slices.Equal(rec.Leaders(), []string{"stable"}) })
		// The follower goes first: stopped the other way round, the
		// leader's release would hand it a tenure of its own.
		low.stop(false)
		high.stop(false)
		if err != nil {
			return nil, nil, err
		}
		started := rec.StartedAfter(startedAt)
		if len(started) != 1 {
			return nil, nil, fmt.Errorf("preemption run %d: %d tenures began after the higher key started, want 1", run, len(started))
		}
		toLead = append(toLead, started[0].Start.Sub(startedAt))
		var two time.Duration
		for _, o := range rec.Overlaps() {
			two += o.Length
		}
		overlap = append(overlap, two)
	}
	return toLead, overlap, nil
}
