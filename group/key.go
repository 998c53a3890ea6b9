package group

import "strings"

// OwnerMark ends the key an owner campaigns with for the elections the
// assignment gives it: the member's own key followed by OwnerMark. Its other
// elections it campaigns for with its own key alone. Keys that end in it are
// reserved.
const OwnerMark = "|group-owner"

// rankedKey is the key a member campaigns with: its own key, marked when it
// owns the election.
func rankedKey(key string, owner bool) string {
	if owner {
		return key + OwnerMark
	}
	return key
}

// splitKey takes a ranked key apart. A key written by a candidate outside
// the group (Istio's fork, a plain elector) carries no mark: it is nobody's
// owner key.
func splitKey(ranked string) (key string, owner bool) {
	key, owner = strings.CutSuffix(ranked, OwnerMark)
	return key, owner
}

// keyOutranks is the KeyComparison of a member whose ranked key is ours.
// Only an owner ever asks: one whose settled view gives it the election.
// It asks a holder with a lower key (as outranks orders the members' keys)
// whether or not the holder owns it, and a holder with the same key only
// when the holder does not own it by its own view (its key is unmarked).
// So a higher key (a new default revision) still preempts the lower ones,
// and since only the highest keys present own elections, it takes every
// election within Settle; but each election goes straight to the member
// that owns it, not first to whichever higher-key member asks first and
// then on to its owner.
func keyOutranks(outranks OutranksFunc, ours, existing string) bool {
	ourKey, ourOwner := splitKey(ours)
	theirKey, theirOwner := splitKey(existing)
	if !ourOwner {
		return false
	}
	if ourKey != theirKey {
		return outranks != nil && outranks(ourKey, theirKey)
	}
	return !theirOwner
}
