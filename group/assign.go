package group

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// Member is a replica of the group as the assignment sees it: its identity
// and its priority key.
type Member struct {
	Identity string
	Key      string
}

// OutranksFunc reports whether key outranks other. It is the pairwise form
// of the elector's KeyComparison: every member must agree on it, it must
// accept empty keys, and equal keys never outrank each other (it is not
// asked about them). Nil means no key outranks another.
type OutranksFunc func(key, other string) bool

// Assign returns the owner of each election: the identity of the member that
// should lead it. Only the eligible members own elections: those whose key
// no other member's key outranks. Each of them owns ⌊E/M⌋ or ⌈E/M⌉ of the E
// elections (M eligible members).
//
// holders maps an election to the identity that leads it now, as far as the
// caller knows. Assign moves as few elections as the balance allows: an
// election stays with its holder whenever the holder is eligible and owns no
// more than its share, so a member that joins M others who share E
// elections evenly takes exactly its share from them, and one that leaves
// gives up only its own. Which elections a member keeps, and which member
// takes one that must move, is chosen by rendezvous hashing of the pair, so
// the outcome depends on the view alone: not on the order of elections or
// members, nor on who computes it.
//
// It returns nil when no member is eligible.
func Assign(elections []string, members []Member, holders map[string]string, outranks OutranksFunc) map[string]string {
	es := slices.Clone(elections)
	slices.Sort(es)
	es = slices.Compact(es)
	ids := eligible(members, outranks)
	if len(ids) == 0 || len(es) == 0 {
		return nil
	}
	q, r := len(es)/len(ids), len(es)%len(ids)

	held := make(map[string][]string, len(ids))
	for _, id := range ids {
		held[id] = nil
	}
	for _, e := range es {
		if h, ok := held[holders[e]]; ok {
			held[holders[e]] = append(h, e)
		}
	}

	// The r shares of q+1 go to the members that hold more than q, so that
	// as many elections as possible stay where they are; ties are broken by
	// a hash of the identity, which every member computes alike.
	byLoad := slices.Clone(ids)
	slices.SortFunc(byLoad, func(a, b string) int {
		if c := cmp.Compare(min(len(held[b]), q+1), min(len(held[a]), q+1)); c != 0 {
			return c
		}
		if c := cmp.Compare(hash(b), hash(a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	capacity := make(map[string]int, len(ids))
	for i, id := range byLoad {
		capacity[id] = q
		if i < r {
			capacity[id] = q + 1
		}
	}

	owner := make(map[string]string, len(es))
	for _, id := range ids {
		mine := held[id]
		slices.SortFunc(mine, func(a, b string) int { return byScore(id, a, b) })
		for _, e := range mine[:min(len(mine), capacity[id])] {
			owner[e] = id
			capacity[id]--
		}
	}
	for _, e := range es {
		if _, ok := owner[e]; ok {
			continue
		}
		best := ""
		for _, id := range ids {
			if capacity[id] > 0 && (best == "" || score(id, e) > score(best, e)) {
				best = id
			}
		}
		owner[e] = best
		capacity[best]--
	}
	return owner
}

// eligible returns the sorted identities of the members whose key no other
// member's key outranks.
func eligible(members []Member, outranks OutranksFunc) []string {
	var ids []string
	for _, m := range members {
		top := true
		for _, o := range members {
			if outranks != nil && o.Key != m.Key && outranks(o.Key, m.Key) {
				top = false
				break
			}
		}
		if top {
			ids = append(ids, m.Identity)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// byScore orders elections by how strongly id draws them, strongest first.
func byScore(id, a, b string) int {
	if c := cmp.Compare(score(id, b), score(id, a)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// score is the rendezvous weight of the pair: a hash of both, the same in
// every process.
func score(id, election string) uint64 {
	return hash(id + "\x00" + election)
}

// hash is FNV-1a, finished with a mixer so that strings that differ only in
// their last bytes still spread over all 64 bits.
func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
