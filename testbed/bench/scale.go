package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// scaleResult is what one scale run measured.
type scaleResult struct {
	Library           string  `json:"library"`
	Elections         int     `json:"elections"`
	BytesPerElection  float64 `json:"bytesPerElection"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	OneLeader         int     `json:"oneLeader"` // elections with exactly one leader, never two
	SecondsToLeaders  float64 `json:"secondsToLeaders"`
	// FollowerRequestsPerSecond counts the requests, watches included, of
	// every candidate that did not lead during the window.
	FollowerRequestsPerSecond float64 `json:"followerRequestsPerSecond"`
}

// measureScale runs the scale scenario in a child process, so that the
// memory it reports is the electors' alone and not the API server's.
func measureScale(kubeconfig, logDir string, lib library, elections int, window time.Duration) (scaleResult, error) {
	self, err := os.Executable()
	if err != nil {
		return scaleResult{}, err
	}
	// Starting, measuring and stopping take a few lease durations besides
	// the window; a child that takes far longer is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), window+10*core.lease)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-scale-worker", "-kubeconfig", kubeconfig, "-library", lib.name,
		"-elections", fmt.Sprint(elections), "-window", window.String(), "-logs", logDir)
	cmd.Stderr = terminal
	out, err := cmd.Output()
	if err != nil {
		return scaleResult{}, fmt.Errorf("scale worker (%s): %w", lib.name, err)
	}
	var r scaleResult
	if err := json.Unmarshal(out, &r); err != nil {
		return scaleResult{}, fmt.Errorf("scale worker (%s) output %q: %w", lib.name, out, err)
	}
	return r, nil
}

// scaleWorker is the child: it runs elections of three candidates each,
// with core timings, on one shared client, and prints a scaleResult as JSON.
func scaleWorker(kubeconfig, libName string, elections int, window time.Duration) error {
	lib := ours
	switch libName {
	case theirs.name:
		lib = theirs
	case oursPolling.name:
		lib = oursPolling
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	counter := &requestCounter{}
	client := kubernetes.NewForConfigOrDie(counter.wrap(config))
	e := &env{config: config, admin: client}
	defer e.cleanup()
	ctx := context.Background()
	ns, err := e.namespace(ctx, "scale-"+lib.name)
	if err != nil {
		return err
	}

	heapBefore := heapInUse()
	recs := make([]*tenures.Recorder, elections)
	var candidates []*candidate
	defer func() {
		var wg sync.WaitGroup
		for _, c := range candidates {
			wg.Go(func() { c.stop(false) })
		}
		wg.Wait()
	}()
	start := time.Now()
	ids := []string{"a", "b", "c"}
	requests := make([][]atomic.Int64, elections)
	for i := range elections {
		recs[i] = &tenures.Recorder{}
		requests[i] = make([]atomic.Int64, len(ids))
		for j, id := range ids {
			candidates = append(candidates, startCandidate(lib, candidateSpec{
				client: client, namespace: ns, lock: fmt.Sprintf("election-%d", i), id: id,
				timings: core, release: true, onStarted: recs[i].OnStartedLeading(id, ""),
				requests: &requests[i][j],
			}))
		}
	}
	err = waitFor(2*core.lease, "every election has a leader", func() bool {
		for _, r := range recs {
			if len(r.Leaders()) != 1 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	toLeaders := time.Since(start)
	time.Sleep(2 * core.retry)
	after := heapInUse()
	if path := os.Getenv("BENCH_HEAP_PROFILE"); path != "" {
		if f, err := os.Create(path + "." + lib.name); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	counter.take()
	before := make([][]int64, elections)
	for i := range requests {
		for j := range requests[i] {
			before[i] = append(before[i], requests[i][j].Load())
		}
	}
	windowStart := time.Now()
	time.Sleep(window)
	counts := counter.take()
	var followerRequests int64
	for i, r := range recs {
		for j, id := range ids {
			led := slices.Contains(r.Leaders(), id)
			for _, t := range r.All() {
				led = led || t.ID == id && t.EndOr(time.Now()).After(windowStart)
			}
			if !led {
				followerRequests += requests[i][j].Load() - before[i][j]
			}
		}
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	ok := 0
	for _, r := range recs {
		if len(r.Leaders()) == 1 && r.MostAtOnce() == 1 {
			ok++
		}
	}
	return json.NewEncoder(os.Stdout).Encode(scaleResult{
		Library:           lib.name,
		Elections:         elections,
		BytesPerElection:  float64(after-heapBefore) / float64(elections),
		RequestsPerSecond: float64(total) / window.Seconds(),
		OneLeader:         ok,
		SecondsToLeaders:  toLeaders.Seconds(),

		FollowerRequestsPerSecond: float64(followerRequests) / window.Seconds(),
	})
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
