package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/group"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// Groups: istiod's elections over replica processes, as package group runs
// them (ours) and as istiod runs them today (upstream: every replica runs
// one client-go elector per election, and nothing spreads them). Three
// replicas start; a fourth joins; one leaves cleanly; one crashes. Each
// replica is a child process with its own client, counted by verb, and
// wrapped in a faults.Switch: a crash cuts the client and the process exits
// without releasing anything. Timings are fast (4s / 3s / 1s), Settle is
// group.DefaultSettle.
//
// Besides "snapshot" and "tenures", a groups replica answers:
//
//	leave  stops (a group member leaves cleanly, handing its elections
//	       over; upstream electors release), answers its tenures, exits
//	crash  cuts its client, answers its tenures (those still open ended
//	       now: a dead process leads nothing), exits without releasing

// groupElections are istiod's eleven elections and a twelfth, so that
// three replicas share them 4/4/4 and four 3/3/3/3.
var groupElections = []string{
	"istio-namespace-controller-election", "istio-clustertrustbundle-controller-election",
	"istio-serviceexport-controller-election", "istio-leader", "istio-gateway-status-leader",
	"istio-status-leader", "istio-analyze-leader", "istio-gateway-deployment",
	"istio-gateway-inferencepool", "istio-node-untaint", "istio-ip-autoallocate",
	"istio-election-12",
}

// groupQuiet is how long the leaders must stay the same for the replicas
// to count as settled: Settle and a RetryPeriod, with room to spare.
var groupQuiet = group.DefaultSettle + fast.retry + 500*time.Millisecond

// groupWorker is the child: replica id of lib, in every group election, in
// namespace.
func groupWorker(kubeconfig, libName, id, namespace string) error {
	lib, err := libraryNamed(libName)
	if err != nil {
		return err
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	wire := &wireCounter{requests: map[string]int64{}}
	cut := &faults.Switch{}
	var memberWrites atomic.Int64
	config = rest.CopyConfig(config)
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet && strings.Contains(req.URL.Path, ".member.") {
				memberWrites.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	client := kubernetes.NewForConfigOrDie(cut.Wrap(wire.wrap(config)))
	recs := make([]*tenures.Recorder, len(groupElections))
	for i := range recs {
		recs[i] = &tenures.Recorder{}
	}
	started := time.Now()
	var stop func() error
	if lib.name == ours.name {
		stop = runGroupMember(client, namespace, id, recs)
	} else {
		candidates := make([]*candidate, len(groupElections))
		for i, name := range groupElections {
			candidates[i] = startCandidate(lib, candidateSpec{
				client: client, namespace: namespace, lock: name, id: id,
				timings: fast, release: true, onStarted: recs[i].OnStartedLeading(id, ""),
			})
		}
		stop = func() error {
			var wg sync.WaitGroup
			for _, c := range candidates {
				wg.Go(func() { c.stop(false) })
			}
			wg.Wait()
			return nil
		}
	}
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var v any
		switch cmd := in.Text(); cmd {
		case "snapshot":
			sn := snapshotOf(wire, recs, started)
			sn.MemberWrites = memberWrites.Load()
			v = sn
		case "tenures":
			v = tenuresOf(recs)
		case "leave":
			if err := stop(); err != nil {
				return err
			}
			return out.Encode(tenuresOf(recs))
		case "crash":
			cut.Crash()
			now := time.Now()
			all := tenuresOf(recs)
			for _, ts := range all {
				for i := range ts {
					if ts[i].End.IsZero() {
						ts[i].End = now
					}
				}
			}
			// Exit without stopping anything: nothing is released.
			return out.Encode(all)
		default:
			return fmt.Errorf("replica %s: unknown command %q", id, cmd)
		}
		if err := out.Encode(v); err != nil {
			return err
		}
	}
	if err := stop(); err != nil {
		return err
	}
	return in.Err()
}

// runGroupMember starts this replica's member of the group; the function
// it returns makes the member leave and waits until it has.
func runGroupMember(client kubernetes.Interface, namespace, id string, recs []*tenures.Recorder) func() error {
	config := group.Config{
		Name:          "istiod",
		Namespace:     namespace,
		Client:        client.CoordinationV1(),
		Identity:      id,
		Key:           "default",
		LeaseDuration: fast.lease,
		RenewDeadline: fast.renew,
		RetryPeriod:   fast.retry,
		Settle:        group.DefaultSettle,
	}
	for i, name := range groupElections {
		config.Elections = append(config.Elections, group.Election{Name: name, Callbacks: le.LeaderCallbacks{
			OnStartedLeading: recs[i].OnStartedLeading(id, ""),
			OnStoppedLeading: func() {},
		}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := group.Run(ctx, config)
		if ctx.Err() == nil {
			// A bad config, or a member that ended unasked: the
			// scenario cannot go on, and the parent sees the exit.
			fail(fmt.Errorf("replica %s: group member ended before it was asked to leave: %v", id, err))
		}
		done <- err
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// depart sends cmd ("leave" or "crash") to replica id, takes its final
// tenures, waits for it to exit, and drops it from the set.
func (s *replicaSet) depart(id, cmd string, limit time.Duration) ([][]tenures.Tenure, error) {
	i := slices.IndexFunc(s.workers, func(w *replicaProc) bool { return w.id == id })
	if i < 0 {
		return nil, fmt.Errorf("replica %s (%s): not running", id, s.lib.name)
	}
	w := s.workers[i]
	s.workers = slices.Delete(s.workers, i, i+1)
	var ts [][]tenures.Tenure
	done := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(w.in, cmd+"\n"); err != nil {
			done <- err
			return
		}
		if err := w.out.Decode(&ts); err != nil {
			done <- err
			return
		}
		done <- w.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("replica %s (%s): %s: %w", id, s.lib.name, cmd, err)
		}
		return ts, nil
	case <-time.After(limit):
		_ = w.cmd.Process.Kill()
		<-done
		return nil, fmt.Errorf("replica %s (%s): %s: not done within %v", id, s.lib.name, cmd, limit)
	}
}

// groupLeaders asks every replica what it leads: for each election, the
// replicas that lead it.
func (s *replicaSet) groupLeaders() ([][]string, error) {
	snaps, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(groupElections))
	for i, sn := range snaps {
		for _, e := range sn.Leading {
			out[e] = append(out[e], s.workers[i].id)
		}
	}
	return out, nil
}

// settle waits until every election has exactly one leader and the leaders
// have stayed the same for groupQuiet, and returns the elections each
// replica leads.
func (s *replicaSet) settle(limit time.Duration) (map[string]int, error) {
	deadline := time.Now().Add(limit)
	var last [][]string
	var since time.Time
	for {
		leaders, err := s.groupLeaders()
		if err != nil {
			return nil, err
		}
		one := !slices.ContainsFunc(leaders, func(ids []string) bool { return len(ids) != 1 })
		if !slices.EqualFunc(leaders, last, slices.Equal) {
			last, since = leaders, time.Now()
		}
		if one && time.Since(since) >= groupQuiet {
			loads := map[string]int{}
			for _, w := range s.workers {
				loads[w.id] = 0
			}
			for _, ids := range leaders {
				loads[ids[0]]++
			}
			return loads, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: leaders of the group not settled within %v: %v", s.lib.name, limit, leaders)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// busiest is the replica that leads the most elections, the first by
// identity of those that lead as many.
func busiest(loads map[string]int) string {
	ids := slices.Sorted(maps.Keys(loads))
	best := ids[0]
	for _, id := range ids {
		if loads[id] > loads[best] {
			best = id
		}
	}
	return best
}

// spread is max − min of the elections each replica leads.
func spread(loads map[string]int) int {
	if len(loads) == 0 {
		return 0
	}
	lo, hi := math.MaxInt, 0
	for _, n := range loads {
		lo, hi = min(lo, n), max(hi, n)
	}
	return hi - lo
}

// groupResult is one library's figures.
type groupResult struct {
	balance       map[string]int // after "start", "join", "leave", "crash"
	joinMoves     int
	toBalance     map[string]float64 // "join", "leave": seconds, NaN if never
	crashedLed    int                // elections the crashed replica led
	ledAgain      float64            // seconds from the crash
	ledAgainLoads map[string]int
	overlaps      int
	// Per replica per second, in steady state: writes, of them those to
	// member Leases, and requests of any verb.
	writes, memberWrites, all float64
}

// groupHistory is every tenure of every election, by election, from every
// replica that ran, with the members present after each step.
type groupHistory [][]tenures.Tenure

func (h groupHistory) add(ts [][]tenures.Tenure) groupHistory {
	if h == nil {
		h = make(groupHistory, len(groupElections))
	}
	for i := range h {
		if i < len(ts) {
			h[i] = append(h[i], ts[i]...)
		}
	}
	return h
}

// loadsAt is who leads each election at t among members: ok is false
// unless each election has exactly one leader and that leader is a member.
func (h groupHistory) loadsAt(t time.Time, members []string) (map[string]int, bool) {
	loads := map[string]int{}
	for _, m := range members {
		loads[m] = 0
	}
	ok := true
	for _, ts := range h {
		var ids []string
		for _, x := range ts {
			if !x.Start.After(t) && x.EndOr(t.Add(time.Nanosecond)).After(t) {
				ids = append(ids, x.ID)
			}
		}
		if len(ids) != 1 || !slices.Contains(members, ids[0]) {
			ok = false
			continue
		}
		loads[ids[0]]++
	}
	return loads, ok
}

// toBalance is how long after from the members were first balanced (every
// election led once by a member, max − min ≤ 1), before until; NaN if
// never.
func (h groupHistory) toBalance(from, until time.Time, members []string) float64 {
	times := []time.Time{from}
	for _, ts := range h {
		for _, x := range ts {
			for _, t := range []time.Time{x.Start, x.End} {
				if t.After(from) && t.Before(until) {
					times = append(times, t)
				}
			}
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	for _, t := range times {
		if loads, ok := h.loadsAt(t, members); ok && spread(loads) <= 1 {
			return t.Sub(from).Seconds()
		}
	}
	return math.NaN()
}

// startedBetween counts the tenures begun in [from, until).
func (h groupHistory) startedBetween(from, until time.Time) int {
	n := 0
	for _, ts := range h {
		for _, x := range ts {
			if !x.Start.Before(from) && x.Start.Before(until) {
				n++
			}
		}
	}
	return n
}

// overlaps counts the pairs of tenures of one election that overlap.
func (h groupHistory) overlaps(now time.Time) int {
	n := 0
	for _, ts := range h {
		for i, a := range ts {
			for _, b := range ts[i+1:] {
				if a.Start.Before(b.EndOr(now)) && b.Start.Before(a.EndOr(now)) {
					n++
				}
			}
		}
	}
	return n
}

func measureGroups(ctx context.Context, e *env, kubeconfig, logDir string, lib library, window time.Duration) (groupResult, error) {
	res := groupResult{balance: map[string]int{}, toBalance: map[string]float64{}}
	ns, err := e.namespace(ctx, "groups-"+lib.name)
	if err != nil {
		return res, err
	}
	s, err := newReplicaSet(lib)
	if err != nil {
		return res, err
	}
	defer s.kill()
	join := func(id string) error {
		return s.add(id, "-group-worker", "-kubeconfig", kubeconfig, "-library", lib.name, "-namespace", ns, "-logs", logDir)
	}
	const limit = 30 * time.Second
	var loads map[string]int
	step := func(name string) error {
		if loads, err = s.settle(limit); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.balance[name] = spread(loads)
		progress("  %s: %s leads %v", name, lib.name, loads)
		return nil
	}
	for _, id := range replicaIDs {
		if err := join(id); err != nil {
			return res, err
		}
	}
	if err := step("start"); err != nil {
		return res, err
	}

	fromAt := time.Now()
	from, err := s.snapshot()
	if err != nil {
		return res, err
	}
	time.Sleep(window)
	to, err := s.snapshot()
	if err != nil {
		return res, err
	}
	secs := time.Since(fromAt).Seconds()
	for i := range to {
		res.memberWrites += float64(to[i].MemberWrites-from[i].MemberWrites) / secs / float64(len(to))
		for verb, n := range to[i].Requests {
			d := float64(n-from[i].Requests[verb]) / secs / float64(len(to))
			res.all += d
			if verb == "PUT" || verb == "POST" || verb == "DELETE" {
				res.writes += d
			}
		}
	}

	joinAt := time.Now()
	if err := join("d"); err != nil {
		return res, err
	}
	if err := step("join"); err != nil {
		return res, err
	}
	leaveAt := time.Now()
	var history groupHistory
	// The busiest replica leaves, and then the busiest crashes: one that
	// leads nothing would move nothing.
	joined := slices.Sorted(maps.Keys(loads))
	leaver := busiest(loads)
	ts, err := s.depart(leaver, "leave", limit)
	if err != nil {
		return res, err
	}
	history = history.add(ts)
	if err := step("leave"); err != nil {
		return res, err
	}
	crashAt := time.Now()
	stayed := slices.DeleteFunc(slices.Clone(joined), func(id string) bool { return id == leaver })
	victim := busiest(loads)
	survivors := slices.DeleteFunc(slices.Clone(stayed), func(id string) bool { return id == victim })
	res.crashedLed = loads[victim]
	crashed, err := s.depart(victim, "crash", limit)
	if err != nil {
		return res, err
	}
	history = history.add(crashed)
	if err := step("crash"); err != nil {
		return res, err
	}
	last, err := s.tenures(len(groupElections))
	if err != nil {
		return res, err
	}
	history = history.add(last)
	if err := s.stop(); err != nil {
		return res, err
	}
	end := time.Now()

	res.joinMoves = history.startedBetween(joinAt, leaveAt)
	res.toBalance["join"] = history.toBalance(joinAt, leaveAt, joined)
	res.toBalance["leave"] = history.toBalance(leaveAt, crashAt, stayed)
	// The crashed replica's elections: those it led when it crashed, led
	// again once a survivor began a tenure.
	var again time.Time
	for i, ts := range crashed {
		// Only a tenure open at the crash ends after it: the replica
		// ended those as it crashed.
		if !slices.ContainsFunc(ts, func(x tenures.Tenure) bool { return x.End.After(crashAt) }) {
			continue
		}
		first := slices.IndexFunc(history[i], func(x tenures.Tenure) bool { return x.ID != victim && x.Start.After(crashAt) })
		if first < 0 {
			return res, fmt.Errorf("%s: election %s, led by the crashed replica, never led again", lib.name, groupElections[i])
		}
		if t := history[i][first].Start; t.After(again) {
			again = t
		}
	}
	res.ledAgain = math.NaN()
	if !again.IsZero() {
		res.ledAgain = again.Sub(crashAt).Seconds()
		res.ledAgainLoads, _ = history.loadsAt(again, survivors)
	}
	res.overlaps = history.overlaps(end)
	return res, nil
}

func groupRows(ctx context.Context, cp *controlplane.ControlPlane, e *env, kubeconfig string, r *report, logDir string, window time.Duration) error {
	path, err := replicaKubeconfig(cp, kubeconfig, logDir)
	if err != nil {
		return err
	}
	results := map[string]groupResult{}
	for _, lib := range []library{ours, theirs} {
		progress("groups: %d elections over replica processes of %s: 3 start, a 4th joins, one leaves, one crashes", len(groupElections), lib.name)
		if results[lib.name], err = measureGroups(ctx, e, path, logDir, lib, window); err != nil {
			return err
		}
	}
	o, u := results[ours.name], results[theirs.name]
	p := fmt.Sprintf("groups (%d, 3→4→3→2 processes)", len(groupElections))
	for _, step := range []struct{ key, name string }{{"start", "3 started"}, {"join", "a 4th joined"}, {"leave", "one left cleanly"}, {"crash", "one crashed"}} {
		r.add(fmt.Sprintf("%s: balance (max − min) once settled, %s", p, step.name), "", float64(o.balance[step.key]), float64(u.balance[step.key]))
	}
	r.add(p+": elections moved by the join", "", float64(o.joinMoves), float64(u.joinMoves))
	for _, step := range []struct{ key, name string }{{"join", "join"}, {"leave", "clean leave"}} {
		metric := fmt.Sprintf("%s: %s to balance (max − min ≤ 1)", p, step.name)
		if uv := u.toBalance[step.key]; !math.IsNaN(uv) {
			r.add(metric, "s", o.toBalance[step.key], uv)
		} else {
			r.addOursOnly(metric, "s", o.toBalance[step.key],
				fmt.Sprintf("upstream never balanced after the %s: nothing moves an election a replica leads, so each keeps what the race gave it.", step.name))
		}
	}
	r.add(fmt.Sprintf("%s: crashed replica's elections (%d ours, %d upstream) led again, max", p, o.crashedLed, u.crashedLed), "s", o.ledAgain, u.ledAgain)
	r.add(p+": balance (max − min) at that moment", "", float64(spread(o.ledAgainLoads)), float64(spread(u.ledAgainLoads)))
	r.add(p+": two leaders of one election, count", "", float64(o.overlaps), float64(u.overlaps))
	r.add(p+": writes/s per replica, steady (membership + elections)", "/s", o.writes, u.writes)
	r.add(p+": of which to member Leases", "/s", o.memberWrites, u.memberWrites)
	r.add(p+": requests/s per replica, steady, any verb", "/s", o.all, u.all)
	r.note(fmt.Sprintf("groups: each replica a process with its own client; timings %v / %v / %v, Settle %v; steady state counted over %v with 3 replicas; settled = every election led once and the leaders unchanged for %v.",
		fast.lease, fast.renew, fast.retry, group.DefaultSettle, window, groupQuiet))
	return nil
}
