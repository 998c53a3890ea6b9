package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// benchRenewal measures one renewal of a leader of lib against a fake
// clientset: time, bytes and allocations per renewal, the fake's own work
// included (the same for both libraries). It uses the simple fake, whose
// tracker is light, so that the elector's share shows. RetryPeriod is a
// microsecond so that the leader renews back to back.
func benchRenewal(lib library) testing.BenchmarkResult {
	return testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		cs := fake.NewSimpleClientset() //nolint:staticcheck // the light tracker is the point
		var updates, target atomic.Int64
		target.Store(-1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			if n, t := updates.Add(1), target.Load(); t > 0 && n >= t {
				cancel()
			}
			return false, nil, nil
		})
		leading := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = lib.run(ctx, candidateSpec{
				client: cs, namespace: "bench", lock: "bench", id: "a",
				timings:   timings{lease: 2 * time.Second, renew: time.Second, retry: time.Microsecond},
				onStarted: func(ctx context.Context) { close(leading); <-ctx.Done() },
			})
		}()
		<-leading
		b.ResetTimer()
		target.Store(updates.Load() + int64(b.N))
		<-ctx.Done()
		b.StopTimer()
		<-done
	})
}
