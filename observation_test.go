package k8sleaderelection

import (
	"testing"
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// ourLease is the LeaseDuration of the candidate in these tests.
const ourLease = 15 * time.Second

func holding(holder, key string, seconds int) rl.LeaderElectionRecord {
	return rl.LeaderElectionRecord{HolderIdentity: holder, HolderKey: key, LeaseDurationSeconds: seconds}
}

func newObservation() observation { return observation{ours: ourLease} }

// TestObservationRestartsOnEveryChange: the lease runs from the first sight
// of each state, readable or not, and a state seen again does not restart it.
func TestObservationRestartsOnEveryChange(t *testing.T) {
	o := newObservation()
	o.sawRecord("1", "a", holding("a", "", 10), t0)
	o.sawRecord("1", "a", holding("a", "", 10), t0.Add(5*time.Second))
	if o.since != t0 {
		t.Fatalf("the same state seen again moved since to %v", o.since)
	}
	// Same bytes, new version: a renewal within the same second.
	o.sawRecord("2", "a", holding("a", "", 10), t0.Add(6*time.Second))
	if o.since != t0.Add(6*time.Second) {
		t.Fatalf("a new version did not restart the lease: since %v", o.since)
	}
	// Garbage is a change, and garbage changing again is another.
	o.sawUnreadable("3", "junk", t0.Add(7*time.Second))
	o.sawUnreadable("4", "junk", t0.Add(8*time.Second))
	if !o.unreadable || o.since != t0.Add(8*time.Second) {
		t.Fatalf("rewritten garbage: unreadable %v since %v; want a restart at 8s", o.unreadable, o.since)
	}
	o.sawUnreadable("4", "junk", t0.Add(9*time.Second))
	if o.since != t0.Add(8*time.Second) {
		t.Fatal("unchanged garbage restarted the lease")
	}
	// The same version readable again after garbage: a change too.
	o.sawRecord("4", "a", holding("a", "", 10), t0.Add(10*time.Second))
	if o.unreadable || o.since != t0.Add(10*time.Second) {
		t.Fatalf("repaired record: unreadable %v since %v", o.unreadable, o.since)
	}
	o.sawAbsent(t0.Add(11 * time.Second))
	o.sawAbsent(t0.Add(12 * time.Second))
	if !o.absent || o.since != t0.Add(11*time.Second) || o.holder() != "" {
		t.Fatalf("absent: %+v", o)
	}
}

// TestObservationWithoutResourceVersions: where the clientset keeps no
// resourceVersion, or keeps one that never changes (client-go's stock fake
// with a seeded object), the bytes tell states apart, and no state counts as
// versioned.
func TestObservationWithoutResourceVersions(t *testing.T) {
	for _, rv := range []string{"", "1"} {
		o := newObservation()
		o.sawRecord(rv, "a@0.1", holding("a", "", 10), t0)
		o.sawRecord(rv, "a@0.5", holding("a", "", 10), t0.Add(time.Second))
		if o.since != t0.Add(time.Second) {
			t.Fatalf("rv %q: new bytes did not restart the lease", rv)
		}
		if o.versioned() {
			t.Fatalf("rv %q: a version that stayed the same across a change counts as versioned", rv)
		}
	}
	// Our own write leaving the version where it was tells the same.
	o := newObservation()
	o.sawRecord("1", "x", holding("x", "", 10), t0)
	o.wrote("1", "1", holding("us", "", 15), t0)
	if o.versioned() || o.heldBy("us", t0) {
		t.Fatal("a write that left the resourceVersion unchanged still counts as versioned")
	}
}

// TestObservationOfOurWrite: the echo of our own write (same version, bytes
// we had not read) is no change; on a clientset without versions, any state
// after our write is one, since it cannot be told from another's write.
func TestObservationOfOurWrite(t *testing.T) {
	o := newObservation()
	o.wrote("7", "6", holding("us", "", 15), t0)
	o.sawRecord("7", "ours", holding("us", "", 15), t0.Add(time.Second))
	if !o.written || o.since != t0 || !o.heldBy("us", t0.Add(time.Second)) {
		t.Fatalf("the echo of our write was taken for a change: %+v", o)
	}
	o = newObservation()
	o.wrote("", "", holding("us", "", 15), t0)
	o.sawRecord("", "someone's", holding("us", "", 15), t0.Add(time.Second))
	if o.written {
		t.Fatal("without versions, a state after our write was taken for our write")
	}
}

// TestObservationExpiryBoundary: the lease runs until exactly its duration
// after the state was first seen, and not a nanosecond longer.
func TestObservationExpiryBoundary(t *testing.T) {
	o := newObservation()
	o.sawRecord("1", "a", holding("a", "", 10), t0)
	if o.expired(t0.Add(10*time.Second - 1)) {
		t.Fatal("expired a nanosecond before its lease ran out")
	}
	if !o.expired(t0.Add(10 * time.Second)) {
		t.Fatal("not expired when its lease ran out")
	}
}

// TestObservationLease: whose duration counts, and what stands in for a
// duration nobody can have meant.
func TestObservationLease(t *testing.T) {
	cases := []struct {
		name    string
		seconds int
		want    time.Duration
	}{
		{"the holder's, shorter than ours", 5, 5 * time.Second},
		{"the holder's, longer than ours", 40, 40 * time.Second},
		{"at MaxLeaseDuration", int(MaxLeaseDuration / time.Second), MaxLeaseDuration},
		{"above MaxLeaseDuration: ours", int(MaxLeaseDuration/time.Second) + 1, ourLease},
		{"largest a Lease holds: ours", 1<<31 - 1, ourLease},
		{"zero: ours", 0, ourLease},
		{"negative: ours", -30, ourLease},
	}
	for _, tc := range cases {
		o := newObservation()
		o.sawRecord("1", "r", holding("a", "", tc.seconds), t0)
		if got := o.lease(); got != tc.want {
			t.Errorf("%s: lease = %v, want %v", tc.name, got, tc.want)
		}
	}
	o := newObservation()
	o.sawUnreadable("1", "junk", t0)
	if got := o.lease(); got != ourLease {
		t.Errorf("unreadable: lease = %v, want ours (%v)", got, ourLease)
	}
	// A holder seen with a longer lease than ours keeps it when its record
	// turns unreadable or loses its duration.
	o = newObservation()
	o.sawRecord("1", "r", holding("a", "", 60), t0)
	o.sawUnreadable("2", "junk", t0.Add(time.Second))
	if got := o.lease(); got != 60*time.Second {
		t.Errorf("unreadable after a 60s holder: lease = %v, want 60s", got)
	}
	o.sawRecord("3", "z", holding("a", "", 0), t0.Add(2*time.Second))
	if got := o.lease(); got != 60*time.Second {
		t.Errorf("zero duration after a 60s holder: lease = %v, want 60s", got)
	}
}

// TestObservationWiped: a lock that loses its holder without a release while
// the holder's lease runs stays held for one more lease; one released, or
// whose holder's lease had run out, does not.
func TestObservationWiped(t *testing.T) {
	cases := []struct {
		name string
		then func(o *observation, at time.Time)
		want bool
	}{
		{"deleted", func(o *observation, at time.Time) { o.sawAbsent(at) }, true},
		{"record wiped to nothing", func(o *observation, at time.Time) { o.sawRecord("2", "null", holding("", "", 0), at) }, true},
		{"released", func(o *observation, at time.Time) { o.sawRecord("2", "rel", holding("", "", 1), at) }, false},
	}
	for _, tc := range cases {
		o := newObservation()
		o.sawRecord("1", "a", holding("a", "", 10), t0)
		tc.then(&o, t0.Add(5*time.Second))
		if o.wiped != tc.want {
			t.Errorf("%s while the lease ran: wiped = %v, want %v", tc.name, o.wiped, tc.want)
		}
		o = newObservation()
		o.sawRecord("1", "a", holding("a", "", 10), t0)
		tc.then(&o, t0.Add(10*time.Second))
		if o.wiped {
			t.Errorf("%s after the lease ran out: wiped", tc.name)
		}
	}
	// A lock first seen empty (created empty ahead of time) is free.
	o := newObservation()
	o.sawRecord("1", "", holding("", "", 0), t0)
	if o.wiped || !o.free() {
		t.Fatal("a lock first seen empty is not free")
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
		{"another holder's key", func(o *observation) { o.sawRecord("v", "r", holding("a", "old", 10), t0) }, "old", true},
		{"another holder without a key", func(o *observation) { o.sawRecord("v", "r", holding("a", "", 10), t0) }, "", true},
		{"equal keys never preempt", func(o *observation) { o.sawRecord("v", "r", holding("a", "stable", 10), t0) }, "", false},
		{"free", func(o *observation) { o.sawRecord("v", "r", holding("", "old", 1), t0) }, "", false},
		{"multilock halves disagree", func(o *observation) { o.sawRecord("v", "r", holding(rl.UnknownLeader, "old", 10), t0) }, "", false},
		{"unreadable", func(o *observation) { o.sawUnreadable("v", "r", t0) }, "", false},
		{"absent", func(o *observation) { o.sawAbsent(t0) }, "", false},
		{"nothing seen", func(*observation) {}, "", false},
	}
	for _, tc := range cases {
		o := newObservation()
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
	cases := []struct {
		name string
		see  func(*observation)
		at   time.Duration
		want bool
	}{
		{"our write", func(o *observation) { o.wrote("1", "", holding("us", "", 15), t0) }, time.Second, true},
		{"our write, lease run out", func(o *observation) { o.wrote("1", "", holding("us", "", 15), t0) }, 15 * time.Second, false},
		{"our write without a version", func(o *observation) { o.wrote("", "", holding("us", "", 15), t0) }, time.Second, false},
		{"our release", func(o *observation) { o.wrote("1", "", holding("", "", 1), t0) }, 0, false},
		{"read naming us", func(o *observation) { o.sawRecord("1", "r", holding("us", "", 15), t0) }, time.Second, false},
		{"our write, then a read of the same state", func(o *observation) {
			o.wrote("1", "", holding("us", "", 15), t0)
			o.sawRecord("1", "r", holding("us", "", 15), t0.Add(time.Second))
		}, time.Second, true},
		{"our write, then a read of another state", func(o *observation) {
			o.wrote("1", "", holding("us", "", 15), t0)
			o.sawRecord("2", "r", holding("us", "", 15), t0.Add(time.Second))
		}, time.Second, false},
	}
	for _, tc := range cases {
		o := newObservation()
		tc.see(&o)
		if got := o.heldBy("us", t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s: heldBy = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestObservationHolder(t *testing.T) {
	o := newObservation()
	if o.holder() != "" || o.names("") || o.free() {
		t.Fatal("nothing seen yet, but the observation names a holder or calls the lock free")
	}
	o.sawRecord("v", "r", holding("a", "", 10), t0)
	if o.holder() != "a" || !o.names("a") || o.free() {
		t.Fatalf("record naming a: holder %q", o.holder())
	}
	o.sawUnreadable("w", "junk", t0)
	if o.holder() != rl.UnknownLeader || o.names(rl.UnknownLeader) || o.free() {
		t.Fatalf("unreadable: holder %q", o.holder())
	}
	o.sawRecord("x", "rel", holding("", "", 1), t0)
	if !o.free() {
		t.Fatal("a released record is not free")
	}
}
