package envelope

import "testing"

// TestSigCacheGenerations: the cache keeps the signatures added last and
// those still in use, never more than its size: when the newer generation
// is full the older is dropped, not the whole cache.
func TestSigCacheGenerations(t *testing.T) {
	c := NewSigCache(4)
	k := func(i byte) [32]byte { return [32]byte{i} }
	for i := byte(1); i <= 4; i++ {
		c.add(k(i))
	}
	if !c.has(k(1)) { // in the older generation, moved to the newer
		t.Fatal("k1 forgotten before the cache was full")
	}
	c.add(k(5))
	c.add(k(6))
	for _, i := range []byte{1, 5, 6} {
		if !c.has(k(i)) {
			t.Errorf("k%d forgotten: the newest and the one in use must stay", i)
		}
	}
	if c.has(k(2)) || c.has(k(3)) {
		t.Error("k2 or k3 still held: more than two generations")
	}
	if n := len(c.cur) + len(c.old); n > 4 {
		t.Errorf("%d entries held, the size is 4", n)
	}
	var nilCache *SigCache
	nilCache.add(k(1))
	if nilCache.has(k(1)) || NewSigCache(0) != nil {
		t.Error("a nil cache caches nothing")
	}
}
