package main

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

// renewalCost is what one renewal cost a leader, averaged.
type renewalCost struct {
	cpu           time.Duration
	bytes, allocs float64
}

// renewals is how many renewals measureRenewal averages over.
const renewals = 100

// measureRenewal runs a leader of lib against a fake clientset that versions
// objects (as an API server does, so both libraries renew with one write and
// no read) with the shortest RetryPeriod ours accepts, and measures the CPU
// time, bytes and allocations of the process per renewal, the fake's own
// work included (the same for both libraries).
func measureRenewal(lib library) renewalCost {
	cs := fakekube.New()
	var updates, target atomic.Int64
	counting := make(chan struct{})
	var once atomic.Bool
	target.Store(-1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, kruntime.Object, error) {
		if n, t := updates.Add(1), target.Load(); t > 0 && n >= t && once.CompareAndSwap(false, true) {
			close(counting)
		}
		return false, nil, nil
	})
	leading := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = lib.run(ctx, candidateSpec{
			client: cs, namespace: "bench", lock: "bench", id: "a",
			timings:   timings{lease: 2 * time.Second, renew: time.Second, retry: 100 * time.Millisecond},
			onStarted: func(ctx context.Context) { close(leading); <-ctx.Done() },
		})
	}()
	<-leading
	time.Sleep(300 * time.Millisecond) // past the first renewals
	before, cpuBefore := memStats(), cpuTime()
	target.Store(updates.Load() + renewals)
	<-counting
	after, cpuAfter := memStats(), cpuTime()
	cancel()
	<-done
	return renewalCost{
		cpu:    (cpuAfter - cpuBefore) / renewals,
		bytes:  float64(after.TotalAlloc-before.TotalAlloc) / renewals,
		allocs: float64(after.Mallocs-before.Mallocs) / renewals,
	}
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
