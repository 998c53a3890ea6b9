package group

import "testing"

func TestKeyOutranksPutsTheMembersKeyFirst(t *testing.T) {
	cases := []struct {
		ours, existing string
		want           bool
	}{
		{rankedKey("default", true), rankedKey("default", false), true},
		{rankedKey("default", true), rankedKey("default", true), false},
		{rankedKey("default", false), rankedKey("default", true), false},
		{rankedKey("default", false), rankedKey("default", false), false},
		// An owner's higher key outranks a lower one, owner or not; a
		// higher key that does not own the election does not ask: the
		// election goes straight to its owner.
		{rankedKey("default", true), rankedKey("canary", true), true},
		{rankedKey("default", true), rankedKey("canary", false), true},
		{rankedKey("default", false), rankedKey("canary", true), false},
		{rankedKey("default", false), rankedKey("canary", false), false},
		{rankedKey("canary", true), rankedKey("default", false), false},
		// A holder outside the group, with our key, is nobody's owner.
		{rankedKey("default", true), "default", true},
		{rankedKey("", true), "", true},
		{rankedKey("", false), "", false},
	}
	for _, c := range cases {
		if got := keyOutranks(byRevision, c.ours, c.existing); got != c.want {
			t.Errorf("keyOutranks(%q, %q) = %v, want %v", c.ours, c.existing, got, c.want)
		}
	}
	if keyOutranks(nil, rankedKey("default", true), "canary") {
		t.Errorf("without Outranks, %q outranks %q; want no key to outrank another", "default", "canary")
	}
}
