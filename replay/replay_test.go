package replay

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
)

var now = time.Unix(1767225600, 0)

// TestReplayCacheBounded covers ECT-V12 [decision]: the cache is bounded,
// evicts only expired entries, and fails closed when full.
func TestReplayCacheBounded(t *testing.T) {
	c := New(16) // one entry per shard
	full := false
	for i := 0; i < 64 && !full; i++ {
		err := c.Add("", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), now.Add(time.Minute), now)
		switch agentctx.CodeOf(err) {
		case "":
		case agentctx.CodeReplayCacheFull:
			full = true
		default:
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("cache of 16 accepted 64 live entries")
	}
	// Once the entries expired, room is made again, and nothing live was dropped before.
	later := now.Add(2 * time.Minute)
	for i := 0; i < 64; i++ {
		if err := c.Add("", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), later.Add(time.Minute), later); err != nil && agentctx.CodeOf(err) != agentctx.CodeReplayCacheFull {
			t.Fatalf("after expiry: %v", err)
		}
	}
	if err := c.Add("", "00000000-0000-4000-8000-000000000000", later.Add(time.Minute), later); agentctx.CodeOf(err) != agentctx.CodeReplay {
		t.Fatalf("live entry forgotten: %v", err)
	}
}

// TestHeapOrder: entries leave in expiry order whatever the insertion order.
func TestHeapOrder(t *testing.T) {
	var h expiryHeap
	for _, e := range []int64{5, 3, 9, 1, 7, 2, 8} {
		h.push(expiryEntry{exp: e, key: fmt.Sprint(e)})
	}
	prev := int64(-1)
	for len(h) > 0 {
		e := h.pop()
		if e.exp < prev {
			t.Fatalf("popped %d after %d", e.exp, prev)
		}
		prev = e.exp
	}
}

// TestKeyedShards covers ECT-V12: the shard of a task is picked by a keyed
// hash with a per-cache random key, so a sender cannot aim its entries at
// one shard.
func TestKeyedShards(t *testing.T) {
	a, b := New(16), New(16)
	differ := 0
	for i := 0; i < 64; i++ {
		jti := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		_, sa := a.shard("", jti)
		_, sb := b.shard("", jti)
		if shardIndex(a, sa) != shardIndex(b, sb) {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("two caches put 64 tasks in the same shards: the shard choice is not keyed")
	}
}

// TestSeenDoesNotRecord: Seen answers without recording.
func TestSeenDoesNotRecord(t *testing.T) {
	c := New(16)
	if c.Seen("", "x", now) {
		t.Fatal("empty cache saw x")
	}
	if err := c.Add("", "x", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if !c.Seen("", "X", now) || c.Seen("", "x", now.Add(2*time.Minute)) {
		t.Fatal("Seen after Add, or after expiry")
	}
}

func shardIndex(c *Cache, s *shard) int {
	for i := range c.shards {
		if &c.shards[i] == s {
			return i
		}
	}
	return -1
}
