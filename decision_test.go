package k8sleaderelection

import "testing"

// TestDecide is the election rule, one row per verdict and per way to reach
// it. Fields left out of a row are false.
func TestDecide(t *testing.T) {
	cases := []struct {
		name string
		s    situation
		want verdict
	}{
		{"absent lock: create", situation{}, verdictCreate},
		{"absent lock, would outrank: still create", situation{outranks: true}, verdictCreate},
		{"names us after a restart: renew", situation{exists: true, ours: true}, verdictRenew},
		{"names us, expired: renew", situation{exists: true, ours: true, expired: true}, verdictRenew},
		{"leading and names us: renew", situation{exists: true, ours: true, leading: true}, verdictRenew},
		{"free: take", situation{exists: true, free: true}, verdictTakeFree},
		{"free and expired: take free", situation{exists: true, free: true, expired: true}, verdictTakeFree},
		{"another holder, expired: take", situation{exists: true, expired: true}, verdictTakeExpired},
		{"another holder, expired, would outrank: take expired", situation{exists: true, expired: true, outranks: true}, verdictTakeExpired},
		{"another holder, running, we outrank: preempt", situation{exists: true, outranks: true}, verdictPreempt},
		{"another holder, running: wait", situation{exists: true}, verdictWait},
		// A leader steps down whatever it finds, if it is not itself.
		{"leading, another holder: step down", situation{exists: true, leading: true}, verdictStepDown},
		{"leading, another holder we outrank: step down", situation{exists: true, leading: true, outranks: true}, verdictStepDown},
		{"leading, another holder expired: step down", situation{exists: true, leading: true, expired: true}, verdictStepDown},
		{"leading, preempted then released: step down", situation{exists: true, leading: true, free: true}, verdictStepDown},
		{"leading, unreadable record: step down", situation{exists: true, leading: true}, verdictStepDown},
		{"leading, lock deleted: step down", situation{leading: true}, verdictStepDown},
		// Handoffs.
		{"leading, asked to hand over: hand over", situation{exists: true, ours: true, leading: true, handoffAsked: true}, verdictHandOver},
		{"holding without leading, asked: hand over", situation{exists: true, ours: true, handoffAsked: true}, verdictHandOver},
		{"outrank a holder that offers: request handoff", situation{exists: true, outranks: true, mayAsk: true}, verdictRequestHandoff},
		{"outrank, asked already: wait for the answer", situation{exists: true, outranks: true, mayAsk: true, asked: true}, verdictWait},
		{"outrank, answer overdue: steal", situation{exists: true, outranks: true}, verdictPreempt},
		{"outrank nobody, holder offers: wait", situation{exists: true, mayAsk: true}, verdictWait},
		{"expired, holder offers: take it", situation{exists: true, expired: true, outranks: true, mayAsk: true}, verdictTakeExpired},
		// Terms: a lock that names us from before this term starts a new
		// one, if it carries terms, unless it was handed to us.
		{"names us after a restart, lock with terms: new term", situation{exists: true, ours: true, termed: true}, verdictNewTerm},
		{"names us, expired, lock with terms: new term", situation{exists: true, ours: true, expired: true, termed: true}, verdictNewTerm},
		{"handed to us, lock with terms: renew", situation{exists: true, ours: true, termed: true, handedToUs: true}, verdictRenew},
		{"leading, lock with terms: renew", situation{exists: true, ours: true, leading: true, termed: true}, verdictRenew},
		{"names us from before, asked to hand over: hand over", situation{exists: true, ours: true, termed: true, handoffAsked: true}, verdictHandOver},
		{"coordinated, given to us: new term", situation{exists: true, ours: true, coordinated: true, termed: true}, verdictNewTerm},
		{"coordinated, leading: renew", situation{exists: true, ours: true, coordinated: true, leading: true, termed: true}, verdictRenew},
		// Operators' step-down requests.
		{"named by an operator, holder offers: request handoff", situation{exists: true, nominated: true, mayAsk: true}, verdictRequestHandoff},
		{"named, asked already: wait for the answer", situation{exists: true, nominated: true, mayAsk: true, asked: true}, verdictWait},
		{"named, holder makes no offer: wait, never take", situation{exists: true, nominated: true}, verdictWait},
		{"named, answer overdue: wait, never take", situation{exists: true, nominated: true, asked: false, mayAsk: false}, verdictWait},
		{"stepped down, we outrank: wait", situation{exists: true, excluded: true, outranks: true}, verdictWait},
		{"stepped down, lock free: wait", situation{exists: true, excluded: true, free: true}, verdictWait},
		{"stepped down, lock expired: wait", situation{exists: true, excluded: true, expired: true}, verdictWait},
		{"stepped down, lock absent: wait", situation{excluded: true}, verdictWait},
		{"stepped down, names us from before: wait, let it run out", situation{exists: true, ours: true, excluded: true, termed: true}, verdictWait},
		{"stepped down, names us, asked to hand over: hand over", situation{exists: true, ours: true, excluded: true, handoffAsked: true}, verdictHandOver},
		{"stepped down, still leading while the work stops: renew", situation{exists: true, ours: true, leading: true, excluded: true}, verdictRenew},
		{"stepped down, leading, another holder: step down", situation{exists: true, excluded: true, leading: true}, verdictStepDown},
		{"coordinated, given to us, end of term: hand over", situation{exists: true, ours: true, coordinated: true, termed: true, endOfTerm: true}, verdictHandOver},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := decide(tc.s); got != tc.want {
				t.Fatalf("decide(%+v) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

// TestRankMattersOnlyForARunningForeignLease: KeyComparison is user code,
// asked only where its answer can change the verdict.
func TestRankMattersOnlyForARunningForeignLease(t *testing.T) {
	cases := []struct {
		name string
		s    situation
		want bool
	}{
		{"another holder, running", situation{exists: true}, true},
		{"absent", situation{}, false},
		{"ours", situation{exists: true, ours: true}, false},
		{"free", situation{exists: true, free: true}, false},
		{"expired", situation{exists: true, expired: true}, false},
		{"we lead", situation{exists: true, leading: true}, false},
	}
	for _, tc := range cases {
		if got := tc.s.rankMatters(); got != tc.want {
			t.Errorf("%s: rankMatters = %v, want %v", tc.name, got, tc.want)
		}
		// Where rank does not matter, the verdict is the same either way.
		if !tc.want {
			with := tc.s
			with.outranks = true
			if decide(with) != decide(tc.s) {
				t.Errorf("%s: rank changed the verdict though rankMatters is false", tc.name)
			}
		}
	}
}

func TestVerdictProperties(t *testing.T) {
	for _, tc := range []struct {
		v             verdict
		name          string
		writes, hands bool
	}{
		{verdictCreate, "create", true, false},
		{verdictWait, "wait", false, false},
		{verdictTakeFree, "take free lock", true, true},
		{verdictTakeExpired, "take expired lock", true, true},
		{verdictPreempt, "preempt", true, true},
		{verdictRenew, "renew", true, false},
		{verdictStepDown, "step down", false, false},
		{verdictRequestHandoff, "request handoff", false, false},
		{verdictHandOver, "hand over", false, false},
		{verdictNewTerm, "renew in a new term", true, false},
		{verdict(99), "unknown", true, false},
	} {
		if tc.v.String() != tc.name || tc.v.writes() != tc.writes || tc.v.changesHands() != tc.hands {
			t.Errorf("verdict %d: %q writes %v changes hands %v; want %q %v %v",
				int(tc.v), tc.v, tc.v.writes(), tc.v.changesHands(), tc.name, tc.writes, tc.hands)
		}
	}
}
