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

// keyOutranks is the KeyComparison of a member whose ranked key is ours:
// the members' keys come first, as outranks orders them; between equal keys
// the owner's outranks the others', and nothing else does. So the owner asks
// a holder for the lock only when the holder has the same key and does not
// own it by its own view (its key is unmarked), and a higher key (a new
// default revision) still preempts whatever the assignment says.
func keyOutranks(outranks OutranksFunc, ours, existing string) bool {
	ourKey, ourOwner := splitKey(ours)
	theirKey, theirOwner := splitKey(existing)
	if ourKey != theirKey {
		return outranks != nil && outranks(ourKey, theirKey)
	}
	return ourOwner && !theirOwner
}
