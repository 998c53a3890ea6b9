package group

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestShardSelectorSplitsTheHashSpaceEvenly checks the selectors against
// the examples of ListOptions.ShardSelector's documentation, and the exact
// bounds of an uneven split.
func TestShardSelectorSplitsTheHashSpaceEvenly(t *testing.T) {
	for _, tc := range []struct {
		shard, shards int
		want          string
	}{
		{0, 1, "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"},
		{0, 2, "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"},
		{1, 2, "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"},
		{0, 4, "shardRange(object.metadata.uid, '0x0000000000000000', '0x4000000000000000')"},
		{1, 4, "shardRange(object.metadata.uid, '0x4000000000000000', '0x8000000000000000')"},
		{2, 4, "shardRange(object.metadata.uid, '0x8000000000000000', '0xc000000000000000')"},
		{3, 4, "shardRange(object.metadata.uid, '0xc000000000000000', '0x10000000000000000')"},
		{1, 3, "shardRange(object.metadata.uid, '0x5555555555555555', '0xaaaaaaaaaaaaaaaa')"},
		{2, 3, "shardRange(object.metadata.uid, '0xaaaaaaaaaaaaaaaa', '0x10000000000000000')"},
	} {
		got, err := ShardSelector(tc.shard, tc.shards)
		if err != nil || got != tc.want {
			t.Errorf("ShardSelector(%d, %d) = %q, %v; want %q", tc.shard, tc.shards, got, err, tc.want)
		}
	}
}

// TestShardSelectorRangesMatchTheirDefinition checks, for many numbers of
// shards, that each range is [⌊k·2^64/S⌋, ⌊(k+1)·2^64/S⌋) computed with big
// integers (so consecutive ranges meet), and that the last ends at 2^64.
func TestShardSelectorRangesMatchTheirDefinition(t *testing.T) {
	space := new(big.Int).Lsh(big.NewInt(1), 64)
	for _, shards := range []int{1, 2, 3, 5, 7, 16, 100, 1000, 1<<31 - 1} {
		for _, k := range []int{0, 1, shards / 2, shards - 2, shards - 1} {
			if k < 0 || k >= shards {
				continue
			}
			sel, err := ShardSelector(k, shards)
			if err != nil {
				t.Fatalf("ShardSelector(%d, %d): %v", k, shards, err)
			}
			lo, hi := bounds(t, sel)
			wantLo := new(big.Int).Div(new(big.Int).Mul(big.NewInt(int64(k)), space), big.NewInt(int64(shards)))
			wantHi := new(big.Int).Div(new(big.Int).Mul(big.NewInt(int64(k+1)), space), big.NewInt(int64(shards)))
			if lo.Cmp(wantLo) != 0 || hi.Cmp(wantHi) != 0 {
				t.Errorf("shard %d of %d: [%x, %x), want [%x, %x)", k, shards, lo, hi, wantLo, wantHi)
			}
			if k == shards-1 && !strings.HasSuffix(sel, "'"+ShardHashEnd+"')") {
				t.Errorf("last shard of %d: %s, want it to end at %s", shards, sel, ShardHashEnd)
			}
		}
	}
}

// bounds parses the two hex bounds of a shardRange selector.
func bounds(t *testing.T, sel string) (lo, hi *big.Int) {
	t.Helper()
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(sel, "shardRange(object.metadata.uid, "), ")"), ", ")
	if len(parts) != 2 {
		t.Fatalf("selector %q: want two bounds", sel)
	}
	parse := func(s string) *big.Int {
		s = strings.Trim(s, "'")
		if !strings.HasPrefix(s, "0x") || (len(s) != 18 && s != ShardHashEnd) {
			t.Fatalf("selector %q: bound %q is not 0x and 16 hex digits, nor %s", sel, s, ShardHashEnd)
		}
		v, ok := new(big.Int).SetString(s[2:], 16)
		if !ok {
			t.Fatalf("selector %q: bound %q is no hex number", sel, s)
		}
		return v
	}
	return parse(parts[0]), parse(parts[1])
}

// TestShardSelectorRefusesBadShards names the bad value, wraps ErrShard,
// and does not panic.
func TestShardSelectorRefusesBadShards(t *testing.T) {
	for _, tc := range []struct {
		shard, shards int
		want          string
	}{
		{0, 0, "shards (0) must be at least 1"},
		{0, -3, "shards (-3) must be at least 1"},
		{-1, 4, "shard (-1) must be in [0, 4)"},
		{4, 4, "shard (4) must be in [0, 4)"},
	} {
		_, err := ShardSelector(tc.shard, tc.shards)
		if err == nil || !errors.Is(err, ErrShard) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ShardSelector(%d, %d): %v, want an error wrapping ErrShard saying %q", tc.shard, tc.shards, err, tc.want)
		}
		if _, err := ShardLabelValue(tc.shard, tc.shards); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ShardLabelValue(%d, %d): %v, want %q", tc.shard, tc.shards, err, tc.want)
		}
	}
	if _, err := ShardOf("x", 0); err == nil || !errors.Is(err, ErrShard) {
		t.Errorf("ShardOf with 0 shards: %v, want an error wrapping ErrShard", err)
	}
	if _, err := ShardLabelSelector("not a key!", 0, 4); err == nil || !errors.Is(err, ErrShard) || !strings.Contains(err.Error(), `label key ("not a key!")`) {
		t.Errorf("ShardLabelSelector with a bad key: %v, want an error naming the key", err)
	}
}

// TestShardOfHashesTheUIDAsTheAPIServerDoes checks the hash against FNV-1a
// 64 test vectors (the API server hashes the UID's bytes with hash/fnv's
// New64a), and that every UID's shard is the one whose selector range
// holds its hash, at the bounds too.
func TestShardOfHashesTheUIDAsTheAPIServerDoes(t *testing.T) {
	for in, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := uidHash(types.UID(in)); got != want {
			t.Errorf("uidHash(%q) = %#x, want %#x (FNV-1a 64)", in, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, shards := range []int{1, 2, 3, 4, 7, 16, 1000} {
		var sums []uint64
		for k := range min(shards, 20) {
			start := shardStart(k, shards)
			sums = append(sums, start, start-1, start+1)
		}
		for range 200 {
			sums = append(sums, r.Uint64())
		}
		for _, sum := range sums {
			k := shardOfHash(sum, shards)
			sel, err := ShardSelector(k, shards)
			if err != nil {
				t.Fatalf("hash %#x of %d shards: shard %d: %v", sum, shards, k, err)
			}
			lo, hi := bounds(t, sel)
			h := new(big.Int).SetUint64(sum)
			if h.Cmp(lo) < 0 || h.Cmp(hi) >= 0 {
				t.Errorf("hash %#x: shard %d of %d, whose range [%x, %x) does not hold it", sum, k, shards, lo, hi)
			}
		}
		uid := types.UID(fmt.Sprintf("0c0ffee0-0000-4000-8000-%012d", shards))
		k, err := ShardOf(uid, shards)
		if err != nil || k != shardOfHash(uidHash(uid), shards) {
			t.Errorf("ShardOf(%s, %d) = %d, %v", uid, shards, k, err)
		}
	}
}

// TestShardLabelSelectorNamesTheShardAndTheirNumber checks the fallback's
// label value and selector.
func TestShardLabelSelectorNamesTheShardAndTheirNumber(t *testing.T) {
	got, err := ShardLabelSelector("example.com/shard", 1, 4)
	if err != nil || got != "example.com/shard=1-of-4" {
		t.Errorf("ShardLabelSelector = %q, %v; want example.com/shard=1-of-4", got, err)
	}
}
