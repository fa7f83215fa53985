// Package replay is the bounded replay cache of the verification procedure
// (ECT-V12, and ACT-V5 for records): a task is accepted once within its
// validity window, scoped by workflow.
package replay

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/agentctx/agentctx"
)

const numShards = 16

// DefaultCapacity is the capacity verifiers use when given no cache.
const DefaultCapacity = 1 << 20

// Cache remembers the tokens a verifier accepted until they expire
// (ECT-V12). It is bounded: it evicts only expired entries, and when it is
// full of live ones it refuses new tokens with replay_cache_full instead of
// forgetting a live entry [decision]. It is safe for concurrent use.
type Cache struct {
	// seed keys the shard choice: a sender cannot pick which shard its
	// entries fill (ECT-V12).
	seed   maphash.Seed
	shards [numShards]shard
}

type shard struct {
	mu       sync.Mutex
	capacity int
	live     map[string]int64 // scope key -> expiry (unix seconds)
	byExpiry expiryHeap
}

// New returns a cache holding at most capacity live entries
// (rounded up to a multiple of 16). Memory is proportional to the entries held.
func New(capacity int) *Cache {
	per := (capacity + numShards - 1) / numShards
	if per < 1 {
		per = 1
	}
	c := &Cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].capacity = per
		// Small caches are allocated whole up front; large ones grow.
		c.shards[i].live = make(map[string]int64, min(per, 256))
	}
	return c
}

// Err is the replay failure for task jti.
func Err(jti string) error {
	return agentctx.Errorf(agentctx.CodeReplay, "ECT-V12", "jti", "task %q was already presented", jti)
}

// shard returns the key of task (wid, jti) and its shard, chosen by a keyed
// hash with the cache's random seed.
func (c *Cache) shard(wid, jti string) (string, *shard) {
	key := strings.ToLower(wid) + "\x00" + strings.ToLower(jti) // UUIDs compare case-insensitively
	// SPEC: ECT-V12 shards are picked by a keyed hash with a per-process random key.
	return key, &c.shards[maphash.String(c.seed, key)%numShards]
}

// Seen reports whether task (wid, jti) is live in the cache at now, without
// recording it: verifiers ask it before their other stateful checks and Add
// only once those passed.
func (c *Cache) Seen(wid, jti string, now time.Time) bool {
	key, s := c.shard(wid, jti)
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.live[key]
	return ok && exp > now.Unix()
}

// Add records the task (wid, jti), valid until until, as seen at now. It
// returns a replay error when the same task (jti within wid, or globally
// without wid) is still live, and replay_cache_full when no room is left.
func (c *Cache) Add(wid, jti string, until, now time.Time) error {
	key, s := c.shard(wid, jti)
	nowU, untilU := now.Unix(), until.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Drop expired entries first, oldest expiry first.
	for len(s.byExpiry) > 0 && s.byExpiry[0].exp <= nowU {
		e := s.byExpiry.pop()
		if s.live[e.key] == e.exp {
			delete(s.live, e.key)
		}
	}
	if exp, ok := s.live[key]; ok && exp > nowU {
		return Err(jti)
	}
	if len(s.live) >= s.capacity {
		return agentctx.Errorf(agentctx.CodeReplayCacheFull, "ECT-V12", "jti", "replay cache is full of live entries; refusing rather than forgetting one")
	}
	s.live[key] = untilU
	s.byExpiry.push(expiryEntry{exp: untilU, key: key})
	return nil
}

type expiryEntry struct {
	exp int64
	key string
}

// expiryHeap is a binary min-heap on exp (no interface boxing on the hot
// path, unlike container/heap).
type expiryHeap []expiryEntry

func (h *expiryHeap) push(e expiryEntry) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].exp <= a[i].exp {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *expiryHeap) pop() expiryEntry {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = expiryEntry{}
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a[l].exp < a[m].exp {
			m = l
		}
		if r < len(a) && a[r].exp < a[m].exp {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
