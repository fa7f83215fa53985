package envelope

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// SigCache remembers signatures that verified, so that verifying the same
// token again (a ledger pre-checks a token in the request's goroutine, then
// verifies it again under its sequencer) skips the signature arithmetic. An
// entry is the SHA-256 of the algorithm, the public key's bytes, the signing
// input and the signature: a hit means exactly this signature over exactly
// these bytes verified with exactly this key, which is what jws.Verify would
// say again. Every other step of Open runs each time. It holds at most size
// entries in two generations of size/2: when the newer is full, the older is
// dropped and the newer takes its place, so the signatures added last are
// always kept (a cache that started over when full lost a whole working
// set at once). It is safe for concurrent use.
type SigCache struct {
	mu       sync.Mutex
	cur, old map[[32]byte]struct{}
	gen      int // entries per generation
}

// NewSigCache returns a cache of at most size signatures; size <= 0 gives
// nil, which caches nothing.
func NewSigCache(size int) *SigCache {
	if size <= 0 {
		return nil
	}
	gen := max(1, size/2)
	return &SigCache{cur: make(map[[32]byte]struct{}, gen), gen: gen}
}

// key names (alg, pub, input, sig); ok is false for a key type it does not
// know, which is then never cached.
func sigKey(alg string, pub crypto.PublicKey, input, sig []byte) (k [32]byte, ok bool) {
	var kb []byte
	switch p := pub.(type) {
	case ed25519.PublicKey:
		kb = p
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			return k, false
		}
		kb = b
	default:
		return k, false
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(alg), kb, input, sig} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
		h.Write(part)
	}
	h.Sum(k[:0])
	return k, true
}

func (c *SigCache) has(k [32]byte) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[k]; ok {
		return true
	}
	if _, ok := c.old[k]; ok {
		c.put(k) // still in use: into the newer generation
		return true
	}
	return false
}

func (c *SigCache) add(k [32]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.put(k)
	c.mu.Unlock()
}

// put adds k to the newer generation, which becomes the older one when
// full. c.mu is held.
func (c *SigCache) put(k [32]byte) {
	if len(c.cur) >= c.gen {
		c.old, c.cur = c.cur, make(map[[32]byte]struct{}, c.gen)
	}
	c.cur[k] = struct{}{}
}
