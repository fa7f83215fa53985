package ledger

import (
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// Bounds of the node cache: nodes below nodeCacheLevel (each in fewer than
// 16 leaves' proofs) are not kept, and at most nodeCacheMax nodes are
// (about 7 MiB; every kept node of a 1M-entry log).
const (
	nodeCacheLevel = 4
	nodeCacheMax   = 1 << 17
)

// nodeCache keeps tree node hashes read from the store so that a proof
// against a large log reads only its lowest nodes there. A stored node never
// changes (it is written once, when its subtree is complete, and the store
// is append-only: LED-3), so a kept hash is never stale. When full, an
// arbitrary node is dropped for a new one: the nodes every proof needs are
// read again at once.
type nodeCache struct {
	mu sync.RWMutex
	m  map[compact.NodeID][32]byte
}

// fill sets out[i] to the kept hash of ids[i] where out[i] is nil and
// the node is kept.
func (c *nodeCache) fill(ids []compact.NodeID, out [][]byte) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, id := range ids {
		if out[i] == nil && id.Level >= nodeCacheLevel {
			if h, ok := c.m[id]; ok {
				out[i] = h[:]
			}
		}
	}
}

// put keeps the hashes of ids that are high enough in the tree.
func (c *nodeCache) put(ids []compact.NodeID, hashes [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		if id.Level < nodeCacheLevel || len(hashes[i]) != 32 {
			continue
		}
		if c.m == nil {
			c.m = make(map[compact.NodeID][32]byte)
		}
		if _, ok := c.m[id]; !ok && len(c.m) >= nodeCacheMax {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		c.m[id] = [32]byte(hashes[i])
	}
}
