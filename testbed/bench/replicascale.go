package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
)

// Scale as replicas run it: three replica processes of one library, each a
// candidate in every one of N elections, N doubling from a start until a
// trial fails. A trial passes when every election is led within one lease
// of the first replica starting (-replicas-start can allow longer), and
// then keeps exactly one leader, the same one, with never a moment without,
// for the whole window.

// replicaScaleConfig sizes the replicas scenario.
type replicaScaleConfig struct {
	from, max int
	window    time.Duration
	// start is how long every election has to be led, from the first
	// replica's start: one lease is the figure's rule; longer measures
	// what N keeps one leader once led, past a slow start.
	start time.Duration
}

// startLimit is c.start, one lease if unset or shorter.
func (c replicaScaleConfig) startLimit() time.Duration { return max(c.start, core.lease) }

// replicaTrial is one trial's outcome.
type replicaTrial struct {
	elections int
	notLed    string // why startup failed, if it did
	led       time.Duration
	health    electionHealth
	failed    int64 // requests that failed during the window
	requests  float64
	// startup is what the replicas sent from their start until every
	// election was led (or the lease for it ran out): requests by verb,
	// and how many failed.
	startup       map[string]int64
	startupFailed int64
	// joined is what a fourth replica, started once the window is over
	// as a replica restarting into elections all held, sent in its first
	// lease, by verb.
	joined map[string]int64
}

func (t replicaTrial) passed() bool {
	h := t.health
	return t.notLed == "" && h.twoLeaders == 0 && h.changed == 0 && h.leaderless == 0 && h.lost == 0
}

// String says how a trial went, and how it broke if it did.
func (t replicaTrial) String() string {
	start := fmt.Sprintf("starting, %s, %d failed", verbCounts(t.startup), t.startupFailed)
	if t.notLed != "" {
		return fmt.Sprintf("N=%d: startup failed: %s (%s)", t.elections, t.notLed, start)
	}
	h := t.health
	return fmt.Sprintf("N=%d: all led after %v (%s); in the window %d elections changed leader, %d had two leaders at once, %d were leaderless at some moment (longest %v), %d tenures lost, %d requests failed, %.0f requests/s; a replica joining them sent %s in its first lease",
		t.elections, t.led.Round(10*time.Millisecond), start, h.changed, h.twoLeaders, h.leaderless, h.longestGap.Round(10*time.Millisecond), h.lost, t.failed, t.requests, verbCounts(t.joined))
}

func replicaScaleRows(ctx context.Context, cp *controlplane.ControlPlane, e *env, kubeconfig string, r *report, logDir string, c replicaScaleConfig) error {
	path, err := replicaKubeconfig(cp, kubeconfig, logDir)
	if err != nil {
		return err
	}
	largest := map[string]float64{}
	for _, lib := range []library{ours, theirs} {
		largest[lib.name] = 0
		var broke *replicaTrial
		for n := c.from; n <= c.max; n *= 2 {
			progress("replicas: %d elections × 3 replica processes of %s for %v", n, lib.name, c.window)
			t, err := runReplicaTrial(ctx, e, path, logDir, lib, n, c)
			if err != nil {
				return err
			}
			progress("  %s", t)
			if !t.passed() {
				broke = &t
				break
			}
			largest[lib.name] = float64(n)
		}
		switch {
		case broke != nil:
			r.note(fmt.Sprintf("replicas, %s: broke at %s", lib.name, broke))
		default:
			r.note(fmt.Sprintf("replicas, %s: held up to -replicas-max (%d); the largest N is at least that", lib.name, c.max))
		}
	}
	label := fmt.Sprintf("replicas (× 3, 3 processes): largest N held for %v", c.window)
	if c.startLimit() > core.lease {
		label += fmt.Sprintf(", led within %v", c.startLimit())
	}
	r.add(label, "", largest[ours.name], largest[theirs.name])
	return nil
}

func runReplicaTrial(ctx context.Context, e *env, kubeconfig, logDir string, lib library, elections int, c replicaScaleConfig) (replicaTrial, error) {
	t := replicaTrial{elections: elections}
	ns, err := e.namespace(ctx, "replicas-"+lib.name)
	if err != nil {
		return t, err
	}
	s, err := startReplicas(kubeconfig, logDir, ns, lib, elections)
	if err != nil {
		return t, err
	}
	// From the first replica's start: the last one starts later, so its
	// candidates may have less than a lease.
	t.led, err = s.waitLed(elections, c.startLimit())
	if snaps, serr := s.snapshot(); serr == nil {
		t.startup = map[string]int64{}
		for _, snap := range snaps {
			t.startupFailed += snap.Failed
			for verb, n := range snap.Requests {
				t.startup[verb] += n
			}
		}
	}
	if errors.Is(err, errNotLed) {
		// Failed; how long the rest take says how badly.
		t.notLed = err.Error()
		if took, err := s.waitLed(elections, c.startLimit()+3*core.lease); err == nil {
			t.notLed += fmt.Sprintf("; all led after %v", took.Round(10*time.Millisecond))
		} else if errors.Is(err, errNotLed) {
			t.notLed += "; " + err.Error()
		}
		return t, stopQuietly(s)
	}
	if err != nil {
		s.kill()
		return t, err
	}
	from := time.Now()
	before, err := s.snapshot()
	if err != nil {
		s.kill()
		return t, err
	}
	time.Sleep(c.window)
	after, err := s.snapshot()
	if err != nil {
		s.kill()
		return t, err
	}
	to := time.Now()
	ts, err := s.tenures(elections)
	if err != nil {
		s.kill()
		return t, err
	}
	t.health = judge(ts, from, to)
	var requests int64
	for i := range after {
		t.failed += after[i].Failed - before[i].Failed
		for verb, n := range after[i].Requests {
			requests += n - before[i].Requests[verb]
		}
	}
	t.requests = float64(requests) / to.Sub(from).Seconds()
	if t.joined, err = joinReplica(s, kubeconfig, logDir, ns, lib, elections); err != nil {
		s.kill()
		return t, err
	}
	return t, stopQuietly(s)
}

// joinReplica starts a fourth replica, d, in every election, as a replica
// that restarts while the others lead, and returns what it sent in its
// first lease, by verb: what a restart costs the API server.
func joinReplica(s *replicaSet, kubeconfig, logDir, ns string, lib library, elections int) (map[string]int64, error) {
	if err := s.add("d", "-replica-worker", "-kubeconfig", kubeconfig, "-library", lib.name, "-namespace", ns,
		"-elections", fmt.Sprint(elections), "-logs", logDir); err != nil {
		return nil, err
	}
	time.Sleep(core.lease)
	snaps, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	return snaps[len(snaps)-1].Requests, nil
}

// stopQuietly stops the replicas, then waits until the control plane, when
// it runs in this process, has worked off what they left (releases, closed
// watches): for this process's CPU use to fall under a tenth of a core for
// a second, for up to two leases. The next trial then starts on an idle API
// server. (With -kubeconfig this process is idle, and that takes a second.)
func stopQuietly(s *replicaSet) error {
	err := s.stop()
	deadline := time.Now().Add(2 * core.lease)
	for time.Now().Before(deadline) {
		before := cpuTime()
		time.Sleep(time.Second)
		if cpuTime()-before < 100*time.Millisecond {
			break
		}
	}
	return err
}

// verbCounts writes requests by verb in a stable order: "120 GET, 40 PUT".
func verbCounts(byVerb map[string]int64) string {
	var parts []string
	for _, verb := range slices.Sorted(maps.Keys(byVerb)) {
		parts = append(parts, fmt.Sprintf("%d %s", byVerb[verb], verb))
	}
	if len(parts) == 0 {
		return "no requests"
	}
	return strings.Join(parts, ", ")
}
