package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// A replica is one process that is a candidate, with core timings, in every
// one of N elections, through one client and so one connection, as a
// replica of a controller that runs many elections does. Three of them (a,
// b, c) make N elections of three candidates. The cost and replicas
// scenarios run them as child processes, so that the parent's CPU time is
// the control plane's alone, and each child's client is its own.
//
// The parent speaks to a replica over its standard input, one command a
// line, and reads one JSON value per command from its standard output:
//
//	snapshot  the counters so far (replicaSnapshot)
//	tenures   every tenure of every election so far ([][]tenures.Tenure)
//
// Closing its standard input stops its candidates (each releases what it
// holds) and ends it.

// replicaSnapshot is a replica's counters, each since it started.
type replicaSnapshot struct {
	// CPU is the replica's own CPU time, user and system.
	CPU time.Duration `json:"cpu"`
	// Requests counts requests by verb: GET, LIST, WATCH (watches
	// started), PUT, POST, DELETE.
	Requests map[string]int64 `json:"requests"`
	// Sent and Received are the bytes of request and response bodies
	// (response bodies as decoded by the transport; watch streams as they
	// arrive).
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	// Failed counts requests that failed: no response, 429 or 5xx.
	Failed int64 `json:"failed"`
	// MemberWrites counts the writes to group members' Leases (groups
	// scenario only; they are in Requests too).
	MemberWrites int64 `json:"memberWrites,omitempty"`
	// Leading lists the elections the replica leads now.
	Leading []int `json:"leading"`
	// Started is when its candidates started.
	Started time.Time `json:"started"`
}

// replicaWorker is the child: replica id of lib in elections elections, in
// namespace.
func replicaWorker(kubeconfig, libName, id, namespace string, elections int) error {
	lib, err := libraryNamed(libName)
	if err != nil {
		return err
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	wire := &wireCounter{requests: map[string]int64{}}
	client := kubernetes.NewForConfigOrDie(wire.wrap(config))
	recs := make([]*tenures.Recorder, elections)
	candidates := make([]*candidate, elections)
	started := time.Now()
	for i := range elections {
		recs[i] = &tenures.Recorder{}
		candidates[i] = startCandidate(lib, candidateSpec{
			client: client, namespace: namespace, lock: fmt.Sprintf("election-%d", i), id: id,
			timings: core, release: true, onStarted: recs[i].OnStartedLeading(id, ""),
		})
	}
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var v any
		switch cmd := in.Text(); cmd {
		case "snapshot":
			v = snapshotOf(wire, recs, started)
		case "tenures":
			v = tenuresOf(recs)
		default:
			return fmt.Errorf("replica %s: unknown command %q", id, cmd)
		}
		if err := out.Encode(v); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for _, c := range candidates {
		wg.Go(func() { c.stop(false) })
	}
	wg.Wait()
	return in.Err()
}

// snapshotOf is a replica's answer to "snapshot".
func snapshotOf(wire *wireCounter, recs []*tenures.Recorder, started time.Time) replicaSnapshot {
	s := replicaSnapshot{CPU: cpuTime(), Started: started}
	s.Requests, s.Sent, s.Received = wire.read()
	s.Failed = wire.failed.Load()
	for i, r := range recs {
		if len(r.Leaders()) > 0 {
			s.Leading = append(s.Leading, i)
		}
	}
	return s
}

// tenuresOf is a replica's answer to "tenures".
func tenuresOf(recs []*tenures.Recorder) [][]tenures.Tenure {
	all := make([][]tenures.Tenure, len(recs))
	for i, r := range recs {
		all[i] = r.All()
	}
	return all
}

func libraryNamed(name string) (library, error) {
	for _, lib := range []library{ours, oursPolling, theirs} {
		if lib.name == name {
			return lib, nil
		}
	}
	return library{}, fmt.Errorf("library %q: want ours, ours-polling or upstream", name)
}

// wireCounter counts a client's requests by verb and the bytes of their
// bodies.
type wireCounter struct {
	mu             sync.Mutex
	requests       map[string]int64
	sent, received atomic.Int64
	failed         atomic.Int64
}

func (c *wireCounter) wrap(config *rest.Config) *rest.Config {
	config = rest.CopyConfig(config)
	config.QPS = -1 // no client-side throttling: count what the electors ask for
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			c.mu.Lock()
			c.requests[verbOf(req)]++
			c.mu.Unlock()
			if req.ContentLength > 0 {
				c.sent.Add(req.ContentLength)
			}
			resp, err := rt.RoundTrip(req)
			if err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
				c.failed.Add(1)
			}
			if resp != nil && resp.Body != nil {
				resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.received}
			}
			return resp, err
		})
	})
	return config
}

func (c *wireCounter) read() (map[string]int64, int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.requests), c.sent.Load(), c.received.Load()
}

// verbOf names a request as the API server's audit log would: a GET is a
// get of one object, a list of a collection, or a watch.
func verbOf(req *http.Request) string {
	if req.Method != http.MethodGet {
		return req.Method
	}
	if w := req.URL.Query().Get("watch"); w == "true" || w == "1" {
		return "WATCH"
	}
	if strings.HasSuffix(strings.TrimSuffix(req.URL.Path, "/"), "/leases") {
		return "LIST"
	}
	return "GET"
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// replicaSet is replica processes of one library: three for the cost and
// replicas scenarios; for the groups scenario, as many as have joined and
// not yet left.
type replicaSet struct {
	lib     library
	ctx     context.Context
	cancel  context.CancelFunc
	self    string
	workers []*replicaProc
}

type replicaProc struct {
	id  string
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

// replicaIDs are the three replicas' identities.
var replicaIDs = []string{"a", "b", "c"}

func newReplicaSet(lib library) (*replicaSet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &replicaSet{lib: lib, ctx: ctx, cancel: cancel, self: self}, nil
}

// startReplicas starts three replicas of lib, each a candidate in every
// one of elections elections in namespace.
func startReplicas(kubeconfig, logDir, namespace string, lib library, elections int) (*replicaSet, error) {
	s, err := newReplicaSet(lib)
	if err != nil {
		return nil, err
	}
	for _, id := range replicaIDs {
		if err := s.add(id, "-replica-worker", "-kubeconfig", kubeconfig, "-library", lib.name, "-namespace", namespace,
			"-elections", fmt.Sprint(elections), "-logs", logDir); err != nil {
			s.kill()
			return nil, err
		}
	}
	return s, nil
}

// add starts one more replica process, id, with the worker arguments args.
func (s *replicaSet) add(id string, args ...string) error {
	cmd := exec.CommandContext(s.ctx, s.self, append([]string{"-replica", id}, args...)...)
	cmd.Stderr = terminal
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start replica %s (%s): %w", id, s.lib.name, err)
	}
	s.workers = append(s.workers, &replicaProc{id: id, cmd: cmd, in: in, out: json.NewDecoder(out)})
	return nil
}

// ask sends cmd to every replica at once and decodes each answer into
// into(i).
func (s *replicaSet) ask(cmd string, into func(i int) any) error {
	errs := make([]error, len(s.workers))
	var wg sync.WaitGroup
	for i, w := range s.workers {
		wg.Go(func() {
			if _, err := io.WriteString(w.in, cmd+"\n"); err != nil {
				errs[i] = fmt.Errorf("replica %s (%s): %s: %w", w.id, s.lib.name, cmd, err)
				return
			}
			if err := w.out.Decode(into(i)); err != nil {
				errs[i] = fmt.Errorf("replica %s (%s): %s: %w", w.id, s.lib.name, cmd, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *replicaSet) snapshot() ([]replicaSnapshot, error) {
	out := make([]replicaSnapshot, len(s.workers))
	err := s.ask("snapshot", func(i int) any { return &out[i] })
	return out, err
}

// tenures returns, for each election, the tenures of all three replicas.
func (s *replicaSet) tenures(elections int) ([][]tenures.Tenure, error) {
	per := make([][][]tenures.Tenure, len(s.workers))
	if err := s.ask("tenures", func(i int) any { return &per[i] }); err != nil {
		return nil, err
	}
	out := make([][]tenures.Tenure, elections)
	for _, p := range per {
		if len(p) != elections {
			return nil, fmt.Errorf("replica sent tenures of %d elections, want %d", len(p), elections)
		}
		for i, ts := range p {
			out[i] = append(out[i], ts...)
		}
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b tenures.Tenure) int { return a.Start.Compare(b.Start) })
	}
	return out, nil
}

// stop ends the replicas: each releases what it leads and exits. One that
// takes longer than a lease is killed.
func (s *replicaSet) stop() error {
	for _, w := range s.workers {
		_ = w.in.Close()
	}
	done := make(chan error, 1)
	go func() {
		var errs []error
		for _, w := range s.workers {
			if err := w.cmd.Wait(); err != nil {
				errs = append(errs, fmt.Errorf("replica %s (%s): %w", w.id, s.lib.name, err))
			}
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		s.cancel()
		return err
	case <-time.After(core.lease):
		s.cancel()
		<-done
		return fmt.Errorf("replicas of %s did not stop within %v", s.lib.name, core.lease)
	}
}

func (s *replicaSet) kill() {
	s.cancel()
	for _, w := range s.workers {
		_ = w.cmd.Wait()
	}
}

// errNotLed is waitLed's error when some election was still without exactly
// one leader at its limit.
var errNotLed = errors.New("not every election led")

// waitLed waits until every election has exactly one leader among the
// replicas, and returns how long after the first replica started its
// candidates that was.
func (s *replicaSet) waitLed(elections int, limit time.Duration) (time.Duration, error) {
	for {
		snaps, err := s.snapshot()
		if err != nil {
			return 0, err
		}
		leaders := make([]int, elections)
		first := snaps[0].Started
		for _, sn := range snaps {
			if sn.Started.Before(first) {
				first = sn.Started
			}
			for _, i := range sn.Leading {
				leaders[i]++
			}
		}
		if !slices.ContainsFunc(leaders, func(n int) bool { return n != 1 }) {
			return time.Since(first), nil
		}
		if time.Since(first) > limit {
			led := 0
			for _, n := range leaders {
				if n == 1 {
					led++
				}
			}
			return 0, fmt.Errorf("%s: %d of %d elections had exactly one leader after %v: %w", s.lib.name, led, elections, limit, errNotLed)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
