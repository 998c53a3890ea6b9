package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// What the API server pays for elections: three replica processes of one
// library, each a candidate in every one of N elections with core timings,
// measured over windows of steady state against the same windows with no
// elections at all.
//
// The embedded etcd and kube-apiserver run in this process, and the
// candidates in the replicas, so this process's CPU time over a window is
// the control plane's (plus this program's own waiting, which the idle
// baseline holds too). etcd's writes and reads are etcd's own counters,
// etcd_mvcc_put_total, etcd_mvcc_delete_total and etcd_mvcc_range_total,
// read from the metrics registry the embedded etcd registers them in. Both
// need the embedded control plane; with -kubeconfig only the clients'
// figures are measured.

// costMark is every counter at one moment.
type costMark struct {
	at    time.Time
	cpu   time.Duration
	etcd  etcdCounts
	snaps []replicaSnapshot // none for the idle baseline
}

// costSample is one window's figures: requests and bytes per election and
// second, the rest per second for all elections.
type costSample struct {
	requests      map[string]float64
	bytes         float64
	etcdWrites    float64
	etcdReads     float64
	etcdPutBytes  float64
	cpu           float64 // this process: API server and etcd, in cores
	candidatesCPU float64 // the three replicas together, in cores
}

func costRows(ctx context.Context, cp *controlplane.ControlPlane, e *env, kubeconfig string, r *report, logDir string, elections, windows int, window time.Duration) error {
	path, err := replicaKubeconfig(cp, kubeconfig, logDir)
	if err != nil {
		return err
	}
	_, embedded := readEtcd()
	embedded = embedded && cp.Embedded()
	mark := func(s *replicaSet) (costMark, error) {
		m := costMark{at: time.Now(), cpu: cpuTime()}
		m.etcd, _ = readEtcd()
		if s != nil {
			var err error
			if m.snaps, err = s.snapshot(); err != nil {
				return m, err
			}
		}
		return m, nil
	}
	measure := func(s *replicaSet) ([]costSample, error) {
		var out []costSample
		from, err := mark(s)
		if err != nil {
			return nil, err
		}
		for range windows {
			time.Sleep(window)
			to, err := mark(s)
			if err != nil {
				return nil, err
			}
			out = append(out, sampleCost(from, to, elections))
			from = to
		}
		return out, nil
	}

	progress("cost: the control plane idle, %d windows of %v", windows, window)
	idle, err := measure(nil)
	if err != nil {
		return err
	}
	results := map[string][]costSample{}
	led := map[string]float64{}
	changes := map[string]float64{}
	for _, lib := range []library{ours, theirs} {
		progress("cost: %d elections × 3 replica processes of %s, %d windows of %v", elections, lib.name, windows, window)
		ns, err := e.namespace(ctx, "cost-"+lib.name)
		if err != nil {
			return err
		}
		s, err := startReplicas(path, logDir, ns, lib, elections)
		if err != nil {
			return err
		}
		took, err := s.waitLed(elections, 3*core.lease)
		if err != nil {
			s.kill()
			return err
		}
		led[lib.name] = took.Seconds()
		time.Sleep(2 * core.retry)
		start := time.Now()
		results[lib.name], err = measure(s)
		if err != nil {
			s.kill()
			return err
		}
		ts, err := s.tenures(elections)
		if err != nil {
			s.kill()
			return err
		}
		h := judge(ts, start, time.Now())
		changes[lib.name] = float64(h.changed)
		if err := s.stop(); err != nil {
			return err
		}
	}

	o, u := results[ours.name], results[theirs.name]
	prefix := fmt.Sprintf("cost (%d × 3, 3 processes)", elections)
	med := func(ss []costSample, f func(costSample) float64) float64 {
		vs := make([]float64, len(ss))
		for i, s := range ss {
			vs[i] = f(s)
		}
		return median(vs)
	}
	both := func(f func(costSample) float64) (float64, float64) { return med(o, f), med(u, f) }
	r.add(prefix+": requests/s per election", "/s", med(o, costSample.totalRequests), med(u, costSample.totalRequests))
	for _, verb := range []string{"GET", "PUT", "POST", "LIST", "WATCH", "DELETE"} {
		ov, uv := both(func(s costSample) float64 { return s.requests[verb] })
		if verb != "GET" && verb != "PUT" && ov == 0 && uv == 0 {
			continue
		}
		r.add(fmt.Sprintf("%s: %s/s per election", prefix, verb), "/s", ov, uv)
	}
	ov, uv := both(func(s costSample) float64 { return s.bytes })
	r.add(prefix+": bytes/s per election (bodies)", "B/s", ov, uv)
	if embedded {
		idleOf := func(f func(costSample) float64) float64 { return med(idle, f) }
		perElection := func(f func(costSample) float64) func(costSample) float64 {
			base := idleOf(f)
			return func(s costSample) float64 { return (f(s) - base) / float64(elections) }
		}
		ov, uv = both(perElection(func(s costSample) float64 { return s.etcdWrites }))
		r.add(prefix+": etcd writes/s per election", "/s", ov, uv)
		ov, uv = both(perElection(func(s costSample) float64 { return s.etcdReads }))
		r.add(prefix+": etcd reads/s per election", "/s", ov, uv)
		ov, uv = both(perElection(func(s costSample) float64 { return s.etcdPutBytes }))
		r.add(prefix+": etcd bytes written/s per election", "B/s", ov, uv)
		cpu := func(s costSample) float64 { return s.cpu }
		ov, uv = both(cpu)
		r.add(fmt.Sprintf("%s: API server + etcd CPU, all %d elections, raw", prefix, elections), "mcores", ov*1000, uv*1000)
		net := perElection(cpu)
		ov, uv = both(net)
		r.add(prefix+": API server + etcd CPU per election-hour, net", "CPU s", ov*3600, uv*3600)
		r.add(prefix+": API server + etcd CPU per 1000 elections, net", "mcores", ov*1e6, uv*1e6)
		r.note(fmt.Sprintf("cost: the idle control plane (no elections) used %.1f mcores and etcd took %.2f writes/s and %.2f reads/s (medians of %d windows of %v); net = raw minus idle, per election.",
			idleOf(cpu)*1000, idleOf(func(s costSample) float64 { return s.etcdWrites }), idleOf(func(s costSample) float64 { return s.etcdReads }), windows, window))
	}
	ov, uv = both(func(s costSample) float64 { return s.candidatesCPU / float64(elections) })
	r.add(prefix+": candidates' CPU per election-hour", "CPU s", ov*3600, uv*3600)
	r.add(prefix+": every election led after", "s", led[ours.name], led[theirs.name])
	r.add(prefix+": elections whose leader changed", "", changes[ours.name], changes[theirs.name])
	return nil
}

func (s costSample) totalRequests() float64 {
	sum := 0.0
	for _, v := range s.requests {
		sum += v
	}
	return sum
}

func sampleCost(from, to costMark, elections int) costSample {
	secs := to.at.Sub(from.at).Seconds()
	s := costSample{
		requests:     map[string]float64{},
		etcdWrites:   (to.etcd.puts + to.etcd.deletes - from.etcd.puts - from.etcd.deletes) / secs,
		etcdReads:    (to.etcd.ranges - from.etcd.ranges) / secs,
		etcdPutBytes: (to.etcd.putBytes - from.etcd.putBytes) / secs,
		cpu:          (to.cpu - from.cpu).Seconds() / secs,
	}
	perElection := secs * float64(elections)
	for i := range to.snaps {
		a, b := from.snaps[i], to.snaps[i]
		for verb, n := range b.Requests {
			s.requests[verb] += float64(n-a.Requests[verb]) / perElection
		}
		s.bytes += float64(b.Sent+b.Received-a.Sent-a.Received) / perElection
		s.candidatesCPU += (b.CPU - a.CPU).Seconds() / secs
	}
	return s
}

// etcdCounts are the embedded etcd's cumulative counters.
type etcdCounts struct{ puts, deletes, ranges, putBytes float64 }

// readEtcd reads etcd's counters from the default Prometheus registry,
// where the embedded etcd registers them; false if they are not there (etcd
// does not run in this process).
func readEtcd() (etcdCounts, bool) {
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return etcdCounts{}, false
	}
	var c etcdCounts
	found := 0
	for _, f := range families {
		var into *float64
		switch f.GetName() {
		case "etcd_mvcc_put_total":
			into = &c.puts
		case "etcd_mvcc_delete_total":
			into = &c.deletes
		case "etcd_mvcc_range_total":
			into = &c.ranges
		case "etcd_debugging_mvcc_total_put_size_in_bytes":
			into = &c.putBytes
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			*into += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		found++
	}
	return c, found == 4
}

// electionHealth is how a set of elections fared over a window.
type electionHealth struct {
	twoLeaders int // elections in which two replicas led at once
	changed    int // elections in which a tenure began
	leaderless int // elections without a leader at some moment
	lost       int // tenures that ended: failed renewals and steals
	longestGap time.Duration
}

// judge reads each election's tenures (sorted by start) over [from, to].
func judge(all [][]tenures.Tenure, from, to time.Time) electionHealth {
	var h electionHealth
	for _, ts := range all {
		two, changed, gap := false, false, time.Duration(0)
		covered := from // the union of the tenures so far covers up to here
		var end time.Time
		for _, t := range ts {
			tEnd := t.EndOr(to)
			if !end.IsZero() && t.Start.Before(end) && tEnd.After(from) && t.Start.Before(to) {
				two = true
			}
			if tEnd.After(end) {
				end = tEnd
			}
			if t.Start.After(from) && t.Start.Before(to) {
				changed = true
			}
			if !t.End.IsZero() && t.End.After(from) && t.End.Before(to) {
				h.lost++
			}
			if tEnd.After(covered) {
				if s := t.Start; s.After(covered) && s.Before(to) {
					gap = max(gap, s.Sub(covered))
				}
				if t.Start.Before(to) {
					covered = tEnd
				}
			}
		}
		if covered.Before(to) {
			gap = max(gap, to.Sub(covered))
		}
		if two {
			h.twoLeaders++
		}
		if changed {
			h.changed++
		}
		if gap > 0 {
			h.leaderless++
			h.longestGap = max(h.longestGap, gap)
		}
	}
	return h
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// replicaKubeconfig is a kubeconfig for child processes: the user's own,
// with whatever credentials it holds, or one written for the embedded
// control plane.
func replicaKubeconfig(cp *controlplane.ControlPlane, kubeconfig, logDir string) (string, error) {
	if !cp.Embedded() {
		return kubeconfig, nil
	}
	path := filepath.Join(logDir, "kubeconfig")
	return path, cp.WriteKubeconfig(path)
}
