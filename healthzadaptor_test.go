package k8sleaderelection

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func TestHealthzAdaptor(t *testing.T) {
	const timeout = 20 * time.Second
	req := httptest.NewRequest("GET", "/healthz", nil)
	adaptor := NewLeaderHealthzAdaptor(timeout)
	if adaptor.Name() != "leaderElection" {
		t.Fatalf("Name = %q", adaptor.Name())
	}
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check before SetLeaderElection: %v", err)
	}

	cs := fakekube.New()
	clk := clocktesting.NewFakeClock(time.Now())
	lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
	lec.Name = "healthz"
	le := newTestElector(t, lec, clk)
	adaptor.SetLeaderElection(le)
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check of a follower: %v", err)
	}

	if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(clk.Now())
	clk.Step(leaseDuration + timeout)
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check at exactly LeaseDuration+timeout without renewal: %v", err)
	}
	clk.Step(time.Millisecond)
	err := adaptor.Check(req)
	if err == nil || !strings.Contains(err.Error(), `"healthz"`) || !strings.Contains(err.Error(), "not renewed") {
		t.Fatalf("Check of a stuck leader = %v, want an error naming the election", err)
	}
	le.markRenewed(clk.Now())
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check after a renewal: %v", err)
	}
	clk.Step(time.Hour)
	le.stopLeading()
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check after leadership ended: %v", err)
	}
}

func TestHealthzAdaptorConcurrentUse(t *testing.T) {
	adaptor := NewLeaderHealthzAdaptor(time.Second)
	le := newTestElector(t, testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", "")), nil)
	req := httptest.NewRequest("GET", "/healthz", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_ = adaptor.Check(req)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			adaptor.SetLeaderElection(le)
			le.startLeading(time.Now())
			le.stopLeading()
		}
	})
	wg.Wait()
}
