package k8sleaderelection

import (
	"testing"
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func holding(holder, key string, seconds int) rl.LeaderElectionRecord {
	return rl.LeaderElectionRecord{HolderIdentity: holder, HolderKey: key, LeaseDurationSeconds: seconds}
}

// TestObservationRestartsOnEveryChange: the lease runs from the first sight
// of each state, readable or not, and a state seen again does not restart it.
func TestObservationRestartsOnEveryChange(t *testing.T) {
	var o observation
	o.sawRecord("rv:1", holding("a", "", 10), t0)
	o.sawRecord("rv:1", holding("a", "", 10), t0.Add(5*time.Second))
	if o.since != t0 {
		t.Fatalf("the same state seen again moved since to %v", o.since)
	}
	// Same record, new version: a renewal within the same second.
	o.sawRecord("rv:2", holding("a", "", 10), t0.Add(6*time.Second))
	if o.since != t0.Add(6*time.Second) {
		t.Fatalf("a new version did not restart the lease: since %v", o.since)
	}
	// Garbage is a change, and garbage changing again is another.
	o.sawUnreadable("rv:3", t0.Add(7*time.Second))
	o.sawUnreadable("rv:4", t0.Add(8*time.Second))
	if !o.unreadable || o.since != t0.Add(8*time.Second) {
		t.Fatalf("rewritten garbage: unreadable %v since %v; want a restart at 8s", o.unreadable, o.since)
	}
	o.sawUnreadable("rv:4", t0.Add(9*time.Second))
	if o.since != t0.Add(8*time.Second) {
		t.Fatal("unchanged garbage restarted the lease")
	}
	// The same bytes readable again after garbage: a change too.
	o.sawRecord("rv:4", holding("a", "", 10), t0.Add(10*time.Second))
	if o.unreadable || o.since != t0.Add(10*time.Second) {
		t.Fatalf("repaired record: unreadable %v since %v", o.unreadable, o.since)
	}
	o.sawAbsent(t0.Add(11 * time.Second))
	o.sawAbsent(t0.Add(12 * time.Second))
	if !o.absent || o.since != t0.Add(11*time.Second) || o.holder() != "" {
		t.Fatalf("absent: %+v", o)
	}
}

// TestObservationExpiryBoundary: the lease runs until exactly its duration
// after the state was first seen, and not a nanosecond longer.
func TestObservationExpiryBoundary(t *testing.T) {
	var o observation
	o.sawRecord("rv:1", holding("a", "", 10), t0)
	if o.expired(t0.Add(10*time.Second-1), time.Hour) {
		t.Fatal("expired a nanosecond before its lease ran out")
	}
	if !o.expired(t0.Add(10*time.Second), time.Hour) {
		t.Fatal("not expired when its lease ran out")
	}
}

// TestObservationLease: whose duration counts, and what stands in for a
// duration nobody can have meant.
func TestObservationLease(t *testing.T) {
	const ours = 15 * time.Second
	cases := []struct {
		name    string
		seconds int
		want    time.Duration
	}{
		{"the holder's, shorter than ours", 5, 5 * time.Second},
		{"the holder's, longer than ours", 40, 40 * time.Second},
		{"at MaxLeaseDuration", int(MaxLeaseDuration / time.Second), MaxLeaseDuration},
		{"above MaxLeaseDuration: ours", int(MaxLeaseDuration/time.Second) + 1, ours},
		{"largest a Lease holds: ours", 1<<31 - 1, ours},
		{"zero: ours", 0, ours},
		{"negative: ours", -30, ours},
	}
	for _, tc := range cases {
		var o observation
		o.sawRecord("rv:1", holding("a", "", tc.seconds), t0)
		if got := o.lease(ours); got != tc.want {
			t.Errorf("%s: lease = %v, want %v", tc.name, got, tc.want)
		}
	}
	var o observation
	o.sawUnreadable("rv:1", t0)
	if got := o.lease(ours); got != ours {
		t.Errorf("unreadable: lease = %v, want ours (%v)", got, ours)
	}
}

// TestObservationRankableKey: a holder's key is ranked only when it is
// known, belongs to someone else, and differs from ours.
func TestObservationRankableKey(t *testing.T) {
	cases := []struct {
		name string
		see  func(*observation)
		key  string
		ok   bool
	}{
		{"another holder's key", func(o *observation) { o.sawRecord("v", holding("a", "old", 10), t0) }, "old", true},
		{"another holder without a key", func(o *observation) { o.sawRecord("v", holding("a", "", 10), t0) }, "", true},
		{"equal keys never preempt", func(o *observation) { o.sawRecord("v", holding("a", "stable", 10), t0) }, "", false},
		{"free", func(o *observation) { o.sawRecord("v", holding("", "old", 1), t0) }, "", false},
		{"multilock halves disagree", func(o *observation) { o.sawRecord("v", holding(rl.UnknownLeader, "old", 10), t0) }, "", false},
		{"unreadable", func(o *observation) { o.sawUnreadable("v", t0) }, "", false},
		{"absent", func(o *observation) { o.sawAbsent(t0) }, "", false},
		{"nothing seen", func(*observation) {}, "", false},
	}
	for _, tc := range cases {
		var o observation
		tc.see(&o)
		key, ok := o.rankableKey("stable")
		if key != tc.key || ok != tc.ok {
			t.Errorf("%s: rankableKey = %q, %v; want %q, %v", tc.name, key, ok, tc.key, tc.ok)
		}
	}
}

// TestObservationHeldBy: a renewal skips the read only over our own write,
// while its lease runs, and only if that write has a resourceVersion.
func TestObservationHeldBy(t *testing.T) {
	const ours = 15 * time.Second
	cases := []struct {
		name string
		see  func(*observation)
		at   time.Duration
		want bool
	}{
		{"our write", func(o *observation) { o.wrote("rv:1", holding("us", "", 15), t0) }, time.Second, true},
		{"our write, lease run out", func(o *observation) { o.wrote("rv:1", holding("us", "", 15), t0) }, 15 * time.Second, false},
		{"our write without a version", func(o *observation) { o.wrote("", holding("us", "", 15), t0) }, time.Second, false},
		{"our release", func(o *observation) { o.wrote("rv:1", holding("", "", 1), t0) }, 0, false},
		{"read naming us", func(o *observation) { o.sawRecord("rv:1", holding("us", "", 15), t0) }, time.Second, false},
		{"our write, then a read of the same state", func(o *observation) {
			o.wrote("rv:1", holding("us", "", 15), t0)
			o.sawRecord("rv:1", holding("us", "", 15), t0.Add(time.Second))
		}, time.Second, true},
		{"our write, then a read of another state", func(o *observation) {
			o.wrote("rv:1", holding("us", "", 15), t0)
			o.sawRecord("rv:2", holding("us", "", 15), t0.Add(time.Second))
		}, time.Second, false},
	}
	for _, tc := range cases {
		var o observation
		tc.see(&o)
		if got := o.heldBy("us", t0.Add(tc.at), ours); got != tc.want {
			t.Errorf("%s: heldBy = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestObservationHolder(t *testing.T) {
	var o observation
	if o.holder() != "" || o.names("") || o.free() {
		t.Fatal("nothing seen yet, but the observation names a holder or calls the lock free")
	}
	o.sawRecord("v", holding("a", "", 10), t0)
	if o.holder() != "a" || !o.names("a") || o.free() {
		t.Fatalf("record naming a: holder %q", o.holder())
	}
	o.sawUnreadable("w", t0)
	if o.holder() != rl.UnknownLeader || o.names(rl.UnknownLeader) || o.free() {
		t.Fatalf("unreadable: holder %q", o.holder())
	}
	o.sawRecord("x", holding("", "", 1), t0)
	if !o.free() {
		t.Fatal("a record without a holder is not free")
	}
}
