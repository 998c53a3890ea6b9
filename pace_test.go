package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// corePeriod is the renewal period at the core components' timings
// (15s/10s/2s): the shortest of 15s/3, 10s/2 and 15s-(2+1.2)*2s.
const corePeriod = 5 * time.Second

func TestRenewPeriodIsDerivedFromTheTimings(t *testing.T) {
	for _, c := range []struct {
		lease, renew, retry, want time.Duration
	}{
		{15 * time.Second, 10 * time.Second, 2 * time.Second, corePeriod},
		{137 * time.Second, 107 * time.Second, 26 * time.Second, 137 * time.Second / 3},
		{60 * time.Second, 50 * time.Second, 2 * time.Second, 20 * time.Second},
		// No room: the pace stays RetryPeriod.
		{11 * time.Second, 10 * time.Second, 8 * time.Second, 8 * time.Second},
		{time.Hour, time.Hour - 1, time.Hour / 2, time.Hour / 2},
	} {
		if got := maxRenewPeriod(c.lease, c.renew, c.retry); got != c.want {
			t.Errorf("maxRenewPeriod(%v, %v, %v) = %v, want %v", c.lease, c.renew, c.retry, got, c.want)
		}
	}
}

// TestRenewalAttemptLeavesRoomForARetry: an attempt made with left before
// the renew deadline may take left less RetryPeriod, so that a retry fits
// after it; never less than RetryPeriod (a retry waits that long from the
// attempt's start anyway), never more than left, and huge values saturate
// instead of wrapping around.
func TestRenewalAttemptLeavesRoomForARetry(t *testing.T) {
	for _, c := range []struct {
		left, retry, want time.Duration
	}{
		{5 * time.Second, 2 * time.Second, 3 * time.Second}, // paced, at 15s/10s/2s
		{8 * time.Second, 2 * time.Second, 6 * time.Second}, // at RetryPeriod
		{3 * time.Second, 2 * time.Second, 2 * time.Second}, // a retry gets the 1s left
		{time.Second, 2 * time.Second, time.Second},         // the last try gets it all
		{durations.Max, time.Second, durations.Max - time.Second},
		{durations.Max, durations.Max, durations.Max},
		{time.Nanosecond, durations.Max, time.Nanosecond},
	} {
		if got := attemptLimit(c.left, c.retry); got != c.want {
			t.Errorf("attemptLimit(%v, %v) = %v, want %v", c.left, c.retry, got, c.want)
		}
	}
}

// pacedLock wraps a lock, notes the time of every request it makes (reads
// and writes) and of every write that succeeded, can fail them all for a
// while, and lets a test break its watch and keep it from starting again.
type pacedLock struct {
	rl.Interface
	mu        sync.Mutex
	requests  []time.Time
	writes    []time.Time
	failUntil time.Time
	noWatch   bool
	current   *brokenWatch
}

// request notes a request and reports the error it fails with, if any.
func (l *pacedLock) request() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.requests = append(l.requests, now)
	if now.Before(l.failUntil) {
		return errors.New("simulated API server outage")
	}
	return nil
}

func (l *pacedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	if err := l.request(); err != nil {
		return nil, nil, err
	}
	return l.Interface.Get(ctx)
}

func (l *pacedLock) Create(ctx context.Context, r rl.LeaderElectionRecord) error {
	if err := l.request(); err != nil {
		return err
	}
	return l.wrote(l.Interface.Create(ctx, r))
}

func (l *pacedLock) Update(ctx context.Context, r rl.LeaderElectionRecord) error {
	if err := l.request(); err != nil {
		return err
	}
	return l.wrote(l.Interface.Update(ctx, r))
}

// wrote notes a write that succeeded, and passes err on.
func (l *pacedLock) wrote(err error) error {
	if err == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.writes = append(l.writes, time.Now())
	}
	return err
}

func (l *pacedLock) ResourceVersion() string {
	if v, ok := l.Interface.(rl.Versioned); ok {
		return v.ResourceVersion()
	}
	return ""
}

func (l *pacedLock) Watch(ctx context.Context) (watch.Interface, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.noWatch {
		return nil, errors.New("simulated watch failure")
	}
	w, err := l.Interface.(rl.Watcher).Watch(ctx)
	if err != nil {
		return nil, err
	}
	l.current = &brokenWatch{Interface: w, out: make(chan watch.Event), stop: make(chan struct{})}
	go l.current.relay()
	return l.current, nil
}

func (l *pacedLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}

// breakWatch ends the running watch and keeps new ones from starting
// until healWatch.
func (l *pacedLock) breakWatch() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noWatch = true
	if l.current != nil {
		l.current.Stop()
	}
}

func (l *pacedLock) healWatch() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noWatch = false
}

// failFor fails every request for d from now.
func (l *pacedLock) failFor(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failUntil = time.Now().Add(d)
}

// lastRequest is the time of the last request.
func (l *pacedLock) lastRequest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests[len(l.requests)-1]
}

// failAfterLastFor fails every request for d from the last one.
func (l *pacedLock) failAfterLastFor(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failUntil = l.requests[len(l.requests)-1].Add(d)
}

// failAfterLastWriteFor fails every request from now until d after the
// last write that succeeded. Keyed to the last write rather than the last
// request, a renewal caught between its read and its write (the stock fake
// reads first) cannot stretch the outage: its read would otherwise start it,
// and fail the very write that was to renew.
func (l *pacedLock) failAfterLastWriteFor(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failUntil = l.writes[len(l.writes)-1].Add(d)
}

// longestWithoutWrite is the longest time between two writes that
// succeeded, when the first of them was made, and when the last write was.
func (l *pacedLock) longestWithoutWrite() (gap time.Duration, from, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 1; i < len(l.writes); i++ {
		if d := l.writes[i].Sub(l.writes[i-1]); d > gap {
			gap, from = d, l.writes[i-1]
		}
	}
	return gap, from, l.writes[len(l.writes)-1]
}

// attemptsAfter returns the distinct times of the requests after start, as
// offsets from start: one per renewal attempt, which makes one or two.
func (l *pacedLock) attemptsAfter(start time.Time) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, r := range l.requests {
		if d := r.Sub(start); d > 0 && (len(out) == 0 || out[len(out)-1] != d) {
			out = append(out, d)
		}
	}
	return out
}

// brokenWatch relays a watch until stopped, then closes its channel.
type brokenWatch struct {
	watch.Interface
	out  chan watch.Event
	stop chan struct{}
	once sync.Once
}

func (w *brokenWatch) relay() {
	defer close(w.out)
	in := w.Interface.ResultChan()
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-in:
			if !ok {
				return
			}
			select {
			case w.out <- ev:
			case <-w.stop:
				return
			}
		}
	}
}

func (w *brokenWatch) ResultChan() <-chan watch.Event { return w.out }

func (w *brokenWatch) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.Interface.Stop()
	})
}

// leadPaced starts a leader "a" through a pacedLock on cs and waits until
// it leads; it returns the lock, the candidate, and when it started leading.
func leadPaced(t *testing.T, ctx context.Context, cs clientset, mode followMode) (*pacedLock, *candidate, context.Context) {
	t.Helper()
	lock := &pacedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", "")}
	lec := testConfig(lock)
	mode.apply(&lec)
	a := runCandidate(t, ctx, lec, nil)
	work := a.leading(t)
	return lock, a, work
}

// TestWatchingLeaderRenewsAtTheLeasesPace: at 15s/10s/2s a leader that
// watches its lock, with two watching followers, sends one renewal per 5s
// and the followers nothing: at most 0.2 requests a second per election
// where renewals need no read (an API server, the strict fake), and no more
// writes than that on the stock fake (where the leader reads before each
// write). A polling leader keeps renewing every RetryPeriod. Nobody else
// ever leads.
func TestWatchingLeaderRenewsAtTheLeasesPace(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		for i, id := range []string{"a", "b", "c"} {
			lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, id, ""))
			mode.apply(&lec)
			c := runCandidate(t, ctx, lec, f)
			if i == 0 {
				c.leading(t)
			}
		}
		time.Sleep(leaseDuration) // past the followers' first reads
		cs.ClearActions()
		const window = 60 * time.Second
		time.Sleep(window)
		writes, requests := count(cs, "update", "leases"), len(cs.Actions())
		period := corePeriod
		if mode.name == "poll" {
			period = retryPeriod
		}
		want := int(window / period)
		if writes < want-1 || writes > want+1 {
			t.Errorf("%d renewals in %v, want %d (one per %v)", writes, window, want, period)
		}
		if mode.name == "watch" {
			perWrite := 1
			if fk.name == "stock" {
				perWrite = 2 // a read before each write: the stock fake does not version objects
			}
			if limit := perWrite * (want + 1); requests > limit {
				t.Errorf("%d requests in %v from a leader and two watching followers, want at most %d (%.2f/s)",
					requests, window, limit, float64(limit)/window.Seconds())
			}
		}
		f.check(t)
		if n, _ := f.count(); n != 1 {
			t.Errorf("%d acquisitions, want 1: a follower took the lock from a live leader (history %q)", n, f.history())
		}
	})
}

// TestStealSeenByWatchStopsTheLeaderAtOnce: a watching leader that renews
// only every 5s learns of a steal (Istio's fork or client-go's elector
// taking the lock) from its watch: its work stops the moment the steal is
// written, not at its next renewal.
func TestStealSeenByWatchStopsTheLeaderAtOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, a, work := leadPaced(t, ctx, cs, modes[0])
		time.Sleep(retryPeriod + time.Second) // between two renewals, 4s before the next
		stolen := time.Now()
		writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 1))
		receive(t, work.Done(), "the leader's work to stop after the steal")
		if took := time.Since(stolen); took != 0 {
			t.Fatalf("the leader's work stopped %v after the steal; want at once (its watch shows it)", took)
		}
		a.finished(t)
	})
}

// TestFailedRenewalRetriesEveryRetryPeriod: a watching leader whose renewal
// fails tries again RetryPeriod later, not a renewal period later, and once
// a renewal succeeds it goes back to its pace. If every try fails, it stops
// at RenewDeadline after its last successful renewal, as always.
func TestFailedRenewalRetriesEveryRetryPeriod(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lock, a, work := leadPaced(t, ctx, cs, modes[0])
		// The first renewal after the watch starts comes RetryPeriod
		// after leading; the pace from there.
		time.Sleep(retryPeriod)
		synctest.Wait()
		start := time.Now()
		lock.failFor(corePeriod + time.Second)
		time.Sleep(3 * corePeriod)
		want := []time.Duration{corePeriod, corePeriod + retryPeriod, 2*corePeriod + retryPeriod}
		if got := lock.attemptsAfter(start); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("renewals at %v after leading, the first failing; want %v", got, want)
		}

		last := start.Add(2*corePeriod + retryPeriod)
		lock.failFor(time.Hour)
		receive(t, work.Done(), "the leader to stop once its renewals fail")
		if took := time.Since(last); took != renewDeadline {
			t.Fatalf("the leader stopped %v after its last successful renewal, want RenewDeadline (%v)", took, renewDeadline)
		}
		retries := lock.attemptsAfter(last)
		wantRetries := []time.Duration{corePeriod, corePeriod + retryPeriod, corePeriod + 2*retryPeriod}
		if fmt.Sprint(retries) != fmt.Sprint(wantRetries) {
			t.Fatalf("tries after the last success at %v; want %v", retries, wantRetries)
		}
		a.finished(t)
	})
}

// TestBrokenWatchFallsBackToRetryPeriod: while a watching leader's watch is
// broken (and cannot start again), only a renewal would show a steal, so it
// renews every RetryPeriod; once the watch is back it returns to its pace.
func TestBrokenWatchFallsBackToRetryPeriod(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lock, _, _ := leadPaced(t, ctx, cs, modes[0])
		// Renewals at 2s (the first since the watch started) and 7s;
		// the next due at 12s.
		time.Sleep(retryPeriod + corePeriod + time.Second)
		broken := time.Now()
		lock.breakWatch()
		time.Sleep(4 * retryPeriod)
		// The last renewal was 1s before the break: the next is due
		// RetryPeriod after it.
		want := []time.Duration{time.Second, 3 * time.Second, 5 * time.Second, 7 * time.Second}
		if got := lock.attemptsAfter(broken); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("renewals after the watch broke at %v; want %v (every RetryPeriod)", got, want)
		}
		healed := time.Now()
		lock.healWatch()
		time.Sleep(3 * corePeriod)
		got := lock.attemptsAfter(healed)
		// The next renewal starts the watch again; from then on, the pace.
		if len(got) < 3 || got[2]-got[1] != corePeriod {
			t.Fatalf("renewals after the watch could start again at %v; want them %v apart once it runs", got, corePeriod)
		}
	})
}

// pollingFollower judges the lock as client-go's elector and Istio's fork
// do: it reads the lock every poll, notes when it last saw the record's
// bytes change, and takes the lease for expired LeaseDuration after that.
// It reports the first time it would have taken the lock.
func pollingFollower(ctx context.Context, t *testing.T, cs clientset, poll time.Duration, expired chan<- string) {
	lock := newTestLock(t, cs, rl.LeasesResourceLock, "poller", "")
	var last []byte
	var observed time.Time
	for ctx.Err() == nil {
		_, raw, err := lock.Get(ctx)
		now := time.Now()
		switch {
		case err != nil:
		case string(raw) != string(last):
			last, observed = raw, now
		case !now.Before(observed.Add(leaseDuration)):
			expired <- fmt.Sprintf("polling every %v, the lease expired at %v, %v after the record last changed", poll, now, now.Sub(observed))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

// TestPollingFollowersNeverSeeTheLeaseExpireUnderTheNewPace: a follower
// that polls (client-go's elector, Istio's fork, which judge a lease
// expired LeaseDuration after they last saw the record change), at the
// shortest and the longest jittered RetryPeriod, never finds the lease of
// our watching leader expired at its pace of 5s, also when renewals fail
// and are retried RetryPeriod later.
func TestPollingFollowersNeverSeeTheLeaseExpireUnderTheNewPace(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lock, _, work := leadPaced(t, ctx, cs, modes[0])
		expired := make(chan string, 2)
		var running sync.WaitGroup
		for _, poll := range []time.Duration{retryPeriod, maxAcquireWait} {
			running.Go(func() { pollingFollower(ctx, t, cs, poll, expired) })
		}
		// Once a lease, the renewal after the last fails (and is
		// retried RetryPeriod later), or the next two do: the next
		// success then comes 9s after the last, 1s short of
		// RenewDeadline, the worst case for a follower that polls.
		// Every 15s the leader may be renewing at this very instant:
		// wait until it has, so that the outage starts from a renewal
		// that is done.
		worst := corePeriod + 2*retryPeriod
		for i := range 8 {
			synctest.Wait()
			lock.failAfterLastWriteFor(corePeriod + time.Duration(i%2)*retryPeriod + retryPeriod/2)
			time.Sleep(leaseDuration)
		}
		// A follower is right to take a lease our leader lost: check
		// that it held the lock throughout before judging the followers.
		gap, from, last := lock.longestWithoutWrite()
		if work.Err() != nil {
			t.Fatalf("our leader stopped leading, its last renewal at %v; the outages must leave it a renewal within %v", last, worst)
		}
		if gap > worst {
			t.Fatalf("our leader did not renew from %v for %v; the outages must leave it a renewal within %v", from, gap, worst)
		}
		select {
		case why := <-expired:
			t.Fatalf("a polling follower would take the lock from our live leader: %s", why)
		default:
		}
		if gap != worst {
			t.Fatalf("the longest time between two renewals was %v; want the outages to reach the worst case, %v", gap, worst)
		}
		cancel()
		running.Wait()
		synctest.Wait()
	})
}

// silentWatchLock wraps a watchable lock whose watches, once silenced,
// deliver nothing more and never end: a stream that died without the client
// noticing (a load balancer that dropped it, an API server that went away
// behind it) while new requests reach a live server.
type silentWatchLock struct {
	*hookedLock
	silenced atomic.Bool
}

func (l *silentWatchLock) Watch(ctx context.Context) (watch.Interface, error) {
	inner, err := l.Interface.(rl.Watcher).Watch(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan watch.Event)
	w := &relayWatch{inner: inner, out: out, stop: make(chan struct{})}
	go func() {
		defer close(out)
		for {
			select {
			case <-w.stop:
				return
			case ev, ok := <-inner.ResultChan():
				if !ok {
					<-w.stop // a dead stream does not end either
					return
				}
				if l.silenced.Load() {
					continue
				}
				select {
				case out <- ev:
				case <-w.stop:
					return
				}
			}
		}
	}()
	return w, nil
}

func (l *silentWatchLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}

type relayWatch struct {
	inner watch.Interface
	out   chan watch.Event
	stop  chan struct{}
	once  atomic.Bool
}

func (w *relayWatch) ResultChan() <-chan watch.Event { return w.out }
func (w *relayWatch) Stop() {
	if w.once.CompareAndSwap(false, true) {
		close(w.stop)
		w.inner.Stop()
	}
}

// TestLeaderWithADeadWatchFindsAStealWithinARetryPeriod: a watching
// leader renews slowly only because its watch would show a steal at once.
// A watch that died silently (no events, no error) shows nothing, and the
// leader must then not lead beside the thief for longer than a polling
// leader would: its own renewals not coming back on the watch show that it
// is blind, and it renews every RetryPeriod until they do.
func TestLeaderWithADeadWatchFindsAStealWithinARetryPeriod(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lock := &silentWatchLock{hookedLock: &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", "")}}
		a := runCandidate(t, ctx, testConfig(lock), nil)
		work := a.leading(t)
		time.Sleep(retryPeriod + time.Second) // past the first renewal
		lock.silenced.Store(true)
		time.Sleep(2 * corePeriod)
		// A renewal falls due at this very instant: let it finish, so
		// that the steal lands after it (on the stock fake a renewal
		// that read the lock first would write the steal away, and on
		// ours the steal would conflict with it).
		synctest.Wait()
		stolen := time.Now()
		writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 1))
		receive(t, work.Done(), "the leader's work to stop after the steal")
		if took := time.Since(stolen); took > retryPeriod {
			t.Fatalf("the leader's work stopped %v after the steal, while its watch had been dead for %v; want within RetryPeriod (%v), as a leader that polls",
				took, 2*corePeriod, retryPeriod)
		}
		a.finished(t)
	})
}

// TestHungRenewalLeavesTimeForARetry: a renewal request that would hang
// until the client's timeout (NewFromKubeconfig sets it to RenewDeadline/2)
// is cut off in time for a retry before the renew deadline, so a leader at
// the derived pace (5s at 15s/10s/2s, the hung request due 5s before its
// deadline) keeps its term through one hung request, as it does at
// client-go's pace. The API server answers at once again after that one
// request.
func TestHungRenewalLeavesTimeForARetry(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		const clientTimeout = renewDeadline / 2
		var hang atomic.Bool
		lock := watchedHookedLock{&hookedLock{Interface: newTestLock(t, fk.new(), rl.LeasesResourceLock, "a", ""),
			// As a real client does, and the fakes do not: a request
			// whose context is done fails at once.
			beforeGet: func(ctx context.Context) error { return ctx.Err() },
			beforeWrite: func(ctx context.Context, _ rl.LeaderElectionRecord) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if !hang.CompareAndSwap(true, false) {
					return nil
				}
				select {
				case <-time.After(clientTimeout):
					return context.DeadlineExceeded
				case <-ctx.Done():
					return ctx.Err()
				}
			}}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lec := testConfig(lock)
		c := runCandidate(t, ctx, lec, nil)
		work := c.leading(t)
		time.Sleep(retryPeriod + time.Second) // past the first renewal
		synctest.Wait()
		hang.Store(true) // the next renewal, at the pace, hangs
		time.Sleep(3 * leaseDuration)
		if work.Err() != nil {
			t.Fatalf("the leader stopped leading after one renewal request hung for the client's timeout (%v); RenewDeadline is %v",
				clientTimeout, renewDeadline)
		}
		cancel()
		c.finished(t)
	})
}
