package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/group"
)

const (
	// shardApp labels the ConfigMaps the sharded controller reconciles.
	shardApp = "app=sharded"
	// shardOwner is the annotation a shard's leader marks its objects with.
	shardOwner = "e2e.k8sleaderelection.io/shard-owner"
)

// shardTerm is one term of one shard's leader: what it saw, and whether
// the API server honoured its shard selector.
type shardTerm struct {
	shard    int
	leader   string
	honoured bool
	synced   bool
	seen     map[string]types.UID
	strays   int      // objects sent that are not in the shard
	stray    []string // the first few of them
}

// shardLedger records the terms of every shard, and overlaps.
type shardLedger struct {
	mu       sync.Mutex
	current  map[int]*shardTerm
	terms    []*shardTerm
	overlaps []string
}

func (l *shardLedger) begin(shard int, leader string) *shardTerm {
	l.mu.Lock()
	defer l.mu.Unlock()
	if other, ok := l.current[shard]; ok {
		l.overlaps = append(l.overlaps, fmt.Sprintf("%s started leading shard %d while %s led it", leader, shard, other.leader))
	}
	term := &shardTerm{shard: shard, leader: leader, seen: map[string]types.UID{}}
	l.current[shard] = term
	l.terms = append(l.terms, term)
	return term
}

func (l *shardLedger) end(term *shardTerm) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current[term.shard] == term {
		delete(l.current, term.shard)
	}
}

func (l *shardLedger) see(term *shardTerm, cm *corev1.ConfigMap, shards int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k, err := group.ShardOf(cm.UID, shards); err != nil || k != term.shard {
		if term.strays++; len(term.stray) < 3 {
			term.stray = append(term.stray, fmt.Sprintf("%s (uid %s, shard %d)", cm.Name, cm.UID, k))
		}
		return
	}
	term.seen[cm.Name] = cm.UID
}

// coverage checks the current terms against all: every object seen by
// exactly one shard's leader, and by no shard but its own. It returns ""
// when the coverage is exact.
func (l *shardLedger) coverage(all []string, shards int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.current) != shards {
		return fmt.Sprintf("%d of %d shards led", len(l.current), shards)
	}
	count := map[string]int{}
	for _, term := range l.current {
		if !term.synced {
			return fmt.Sprintf("shard %d's leader %s has not listed yet", term.shard, term.leader)
		}
		if term.strays > 0 {
			return fmt.Sprintf("shard %d's leader %s kept %d objects of other shards, first %v", term.shard, term.leader, term.strays, term.stray)
		}
		for name := range term.seen {
			count[name]++
		}
	}
	for _, name := range all {
		if count[name] != 1 {
			return fmt.Sprintf("object %s seen by %d shard leaders, want exactly one", name, count[name])
		}
	}
	if len(count) != len(all) {
		return fmt.Sprintf("shard leaders saw %d objects, want the %d created", len(count), len(all))
	}
	return ""
}

func (l *shardLedger) leaders() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int{}
	for _, term := range l.current {
		n[term.leader]++
	}
	return n
}

// runShard is the controller of one shard: it lists and watches the
// ConfigMaps of its shard with the server-side shard selector, and marks
// each with an annotation. Where the list does not echo the selector
// (ListMeta.ShardInfo), the server did not honour it and sent every
// object: it keeps those of its shard by group.ShardOf of their UID.
func runShard(ctx context.Context, cms corev1client.ConfigMapInterface, l *shardLedger, term *shardTerm, shards int) {
	selector, err := group.ShardSelector(term.shard, shards)
	if err != nil {
		panic(err)
	}
	opts := metav1.ListOptions{LabelSelector: shardApp, ShardSelector: selector}
	for ctx.Err() == nil {
		list, err := cms.List(ctx, opts)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		honoured := list.ShardInfo != nil && list.ShardInfo.Selector == selector
		mine := func(cm *corev1.ConfigMap) bool {
			if honoured {
				return true
			}
			k, err := group.ShardOf(cm.UID, shards)
			return err == nil && k == term.shard
		}
		for i := range list.Items {
			if cm := &list.Items[i]; mine(cm) {
				mark(ctx, cms, cm, term)
				l.see(term, cm, shards)
			}
		}
		l.mu.Lock()
		term.honoured, term.synced = honoured, true
		l.mu.Unlock()
		watchOpts := opts
		watchOpts.ResourceVersion = list.ResourceVersion
		w, err := cms.Watch(ctx, watchOpts)
		if err != nil {
			continue
		}
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || ev.Type == watch.Deleted || !mine(cm) {
				continue
			}
			if cm.Annotations[shardOwner] != ownerMark(term) {
				mark(ctx, cms, cm, term)
			}
			l.see(term, cm, shards)
		}
		w.Stop()
	}
}

func ownerMark(term *shardTerm) string { return fmt.Sprintf("%d/%s", term.shard, term.leader) }

// mark annotates the object with the shard and leader that own it.
func mark(ctx context.Context, cms corev1client.ConfigMapInterface, cm *corev1.ConfigMap, term *shardTerm) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, shardOwner, ownerMark(term))
	_, _ = cms.Patch(ctx, cm.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
}

// unsharded is an API server that does not serve sharding, as one without
// the ShardedListAndWatch gate: it drops the shard selector of every list
// and watch, and so returns every object and echoes none.
type unsharded struct {
	corev1client.ConfigMapInterface
}

func (u unsharded) List(ctx context.Context, o metav1.ListOptions) (*corev1.ConfigMapList, error) {
	o.ShardSelector = ""
	return u.ConfigMapInterface.List(ctx, o)
}

func (u unsharded) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	o.ShardSelector = ""
	return u.ConfigMapInterface.Watch(ctx, o)
}

// startShardReplica runs a member of a group of shards shard elections,
// each of whose leaders runs runShard.
func startShardReplica(t *testing.T, ns, id string, shards int, l *shardLedger, serverSharding bool) *spreadReplica {
	t.Helper()
	restConfig := cp.Config()
	restConfig.QPS, restConfig.Burst = 50, 100
	client := kubernetes.NewForConfigOrDie(restConfig)
	var cms corev1client.ConfigMapInterface = client.CoreV1().ConfigMaps(ns)
	if !serverSharding {
		cms = unsharded{cms}
	}
	config := group.Config{
		Name:          "sharded",
		Namespace:     ns,
		Client:        client.CoordinationV1(),
		Identity:      id,
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		Settle:        spreadSettle,
	}
	for shard := range shards {
		config.Elections = append(config.Elections, group.Election{
			Name: fmt.Sprintf("sharded-controller-%d", shard),
			Callbacks: le.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					term := l.begin(shard, id)
					defer l.end(term)
					runShard(ctx, cms, l, term, shards)
				},
				OnStoppedLeading: func() {},
			},
		})
	}
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background().WithValues("member", id)))
	r := &spreadReplica{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := group.Run(ctx, config); err != nil {
			t.Errorf("member %s: %v", id, err)
		}
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// TestShardEachObjectHasExactlyOneOwnerOnKubeAPIServer runs four shard
// elections over three replicas; each shard's leader lists and watches
// the ConfigMaps of its shard and marks them. Every object is seen by
// exactly one shard's leader, the union is every object, objects created
// later reach the right one, and after a replica leaves cleanly its shards
// move by handoff and the coverage is exact again. With server-side
// sharding the lists echo the selector and the server sends each leader
// only its shard (by the same hash as group.ShardOf); without it (an API
// server without the gate), the lists echo nothing and each leader keeps
// its shard by group.ShardOf.
func TestShardEachObjectHasExactlyOneOwnerOnKubeAPIServer(t *testing.T) {
	for _, tc := range []struct {
		name           string
		serverSharding bool
	}{{"server-side", true}, {"fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newElection(t)
			t.Cleanup(func() { checkNoGroupLeaks(t) })
			const shards = 4
			ctx := context.Background()
			cms := e.admin.CoreV1().ConfigMaps(e.ns)
			var all []string
			create := func(n int) {
				for range n {
					name := fmt.Sprintf("object-%02d", len(all))
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "sharded"}}}
					if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
						t.Fatalf("create %s: %v", name, err)
					}
					all = append(all, name)
				}
			}
			create(40)

			l := &shardLedger{current: map[int]*shardTerm{}}
			start := time.Now()
			replicas := map[string]*spreadReplica{}
			for _, id := range []string{"a", "b", "c"} {
				replicas[id] = startShardReplica(t, e.ns, id, shards, l, tc.serverSharding)
			}
			exact := func() bool {
				n := l.leaders()
				counts := slices.Sorted(maps.Values(n))
				return l.coverage(all, shards) == "" && (len(n) < 3 || slices.Equal(counts, []int{1, 1, 2}))
			}
			balancedOver3 := func() bool { return len(l.leaders()) == 3 && exact() }
			why := func() string { return l.coverage(all, shards) }
			if d := waitUntil(30*time.Second, balancedOver3); d < 0 {
				t.Fatalf("three replicas: coverage not exact, or shards not spread 2/1/1, within 30s: %s; leaders %v", why(), l.leaders())
			}
			addFigure("shard "+tc.name+": 3 replicas start to spread 2/1/1, coverage exact", time.Since(start))
			// The first leaders are whoever took each shard first; past the
			// settle and a handoff, the spread is the assignment's.
			time.Sleep(2 * leaseDuration)
			if !balancedOver3() {
				t.Fatalf("three replicas, settled: %s; leaders %v", why(), l.leaders())
			}
			l.mu.Lock()
			for _, term := range l.current {
				if term.honoured != tc.serverSharding {
					t.Errorf("shard %d: the list echoed the selector: %v, want %v", term.shard, term.honoured, tc.serverSharding)
				}
			}
			l.mu.Unlock()

			create(8)
			if d := waitUntil(10*time.Second, exact); d < 0 {
				t.Fatalf("objects created later: coverage not exact within 10s: %s", why())
			}

			// The replica that leads two shards, or any, leaves cleanly.
			leaving := ""
			for id, n := range l.leaders() {
				if leaving == "" || n > l.leaders()[leaving] {
					leaving = id
				}
			}
			terms := len(l.terms)
			moved := l.leaders()[leaving]
			start = time.Now()
			replicas[leaving].stop(t)
			create(4)
			if d := waitUntil(30*time.Second, func() bool {
				n := l.leaders()
				return len(n) == 2 && slices.Equal(slices.Sorted(maps.Values(n)), []int{2, 2}) && exact()
			}); d < 0 {
				t.Fatalf("after %s left: coverage not exact within 30s: %s; leaders %v", leaving, why(), l.leaders())
			}
			addFigure("shard "+tc.name+": clean leave to spread 2/2, coverage exact", time.Since(start))
			l.mu.Lock()
			if got := len(l.terms) - terms; got != moved {
				t.Errorf("%d shard terms began after %s left, want its %d shards, each once", got, leaving, moved)
			}
			if len(l.overlaps) > 0 {
				t.Errorf("two leaders of one shard at once: %v", l.overlaps)
			}
			l.mu.Unlock()

			// The marks on the server agree: each object marked by the
			// leader of its shard now.
			list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: shardApp})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var wrong []string
			l.mu.Lock()
			for _, cm := range list.Items {
				k, _ := group.ShardOf(cm.UID, shards)
				if term := l.current[k]; term == nil || cm.Annotations[shardOwner] != ownerMark(term) {
					wrong = append(wrong, cm.Name+"="+cm.Annotations[shardOwner])
				}
			}
			l.mu.Unlock()
			sort.Strings(wrong)
			if len(wrong) > 0 {
				t.Errorf("objects not marked by their shard's leader: %v", wrong)
			}
		})
	}
}

// waitUntil polls cond every 50ms for at most limit: how long it took, or
// -1 if it did not hold.
func waitUntil(limit time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			return -1
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}
