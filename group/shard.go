package group

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ShardHashEnd is the exclusive upper bound of the hash space that
// KEP-5866's shardRange divides: 2^64, written as the API server wants it.
const ShardHashEnd = "0x10000000000000000"

// ErrShard is wrapped by the errors of the shard helpers, for a shard or a
// number of shards out of range, or a bad label key.
var ErrShard = errors.New("invalid shard")

// checkShard checks that shard is one of shards.
func checkShard(shard, shards int) error {
	if shards < 1 {
		return fmt.Errorf("shards (%d) must be at least 1: %w", shards, ErrShard)
	}
	if shard < 0 || shard >= shards {
		return fmt.Errorf("shard (%d) must be in [0, %d): %w", shard, shards, ErrShard)
	}
	return nil
}

// shardStart is the first hash of shard k of shards, for k < shards:
// ⌊k·2^64/shards⌋, so that the shards split the space evenly (their sizes
// differ by at most one) and every hash falls in exactly one.
func shardStart(k, shards int) uint64 {
	q, _ := bits.Div64(uint64(k), 0, uint64(shards))
	return q
}

// hexBound writes a bound as the API server parses it: 0x and sixteen
// lower-case hex digits, or ShardHashEnd.
func hexBound(k, shards int) string {
	if k == shards {
		return ShardHashEnd
	}
	return fmt.Sprintf("0x%016x", shardStart(k, shards))
}

// ShardSelector returns the server-side shard selector (KEP-5866,
// metav1.ListOptions.ShardSelector from Kubernetes 1.36, behind the
// ShardedListAndWatch feature gate) for shard of shards: the shard-th of
// shards equal ranges of the 64-bit FNV-1a hash of the objects' UIDs, as
//
//	shardRange(object.metadata.uid, '0x4000000000000000', '0x8000000000000000')
//
// for shard 1 of 4. The last shard ends at ShardHashEnd, so the shards
// cover every object once. An API server that does not serve sharding
// ignores the field and returns every object: check that the list echoes
// the selector (ListMeta.ShardInfo) and filter with ShardOf otherwise.
func ShardSelector(shard, shards int) (string, error) {
	if err := checkShard(shard, shards); err != nil {
		return "", err
	}
	return fmt.Sprintf("shardRange(object.metadata.uid, '%s', '%s')", hexBound(shard, shards), hexBound(shard+1, shards)), nil
}

// ShardOf returns the shard, of shards, that the object with this UID is
// in: the one whose ShardSelector range holds the 64-bit FNV-1a hash of the
// UID's bytes, the hash kube-apiserver's shardRange takes. A client-side
// filter (for an API server that does not serve sharding) or a labeller
// that uses it agrees with the server's ranges.
func ShardOf(uid types.UID, shards int) (int, error) {
	if err := checkShard(0, shards); err != nil {
		return 0, err
	}
	return shardOfHash(uidHash(uid), shards), nil
}

// uidHash is the 64-bit FNV-1a hash of the UID's bytes, as kube-apiserver
// hashes object.metadata.uid for shardRange.
func uidHash(uid types.UID) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	return h.Sum64()
}

// shardOfHash returns the shard whose range holds sum: ⌊sum·shards/2^64⌋,
// or the next one where sum is that one's first hash (shardStart rounds
// down, so a range may begin just below k·2^64/shards).
func shardOfHash(sum uint64, shards int) int {
	k, _ := bits.Mul64(sum, uint64(shards))
	if next := int(k) + 1; next < shards && sum >= shardStart(next, shards) {
		return next
	}
	return int(k)
}

// ShardLabelValue returns the value of a shard label for shard of shards:
// "<shard>-of-<shards>". The number of shards is part of it, so that an
// object labelled for another number of shards is selected by none until
// it is labelled again.
func ShardLabelValue(shard, shards int) (string, error) {
	if err := checkShard(shard, shards); err != nil {
		return "", err
	}
	return strconv.Itoa(shard) + "-of-" + strconv.Itoa(shards), nil
}

// ShardLabelSelector returns the label selector "key=<ShardLabelValue>"
// for shard of shards: the fallback for API servers that do not serve
// ShardSelector, where the controller's objects carry the label key with
// the value of their shard (ShardOf of their UID).
func ShardLabelSelector(key string, shard, shards int) (string, error) {
	if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
		return "", fmt.Errorf("label key (%q) must be a qualified name: %s: %w", key, strings.Join(msgs, "; "), ErrShard)
	}
	value, err := ShardLabelValue(shard, shards)
	if err != nil {
		return "", err
	}
	return key + "=" + value, nil
}
