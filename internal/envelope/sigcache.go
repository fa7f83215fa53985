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
// say again. Every other step of Open runs each time. It holds at most max
// entries (when full it starts over) and is safe for concurrent use.
type SigCache struct {
	mu  sync.Mutex
	m   map[[32]byte]struct{}
	max int
}

// NewSigCache returns a cache of at most max signatures; max <= 0 gives
// nil, which caches nothing.
func NewSigCache(max int) *SigCache {
	if max <= 0 {
		return nil
	}
	return &SigCache{m: make(map[[32]byte]struct{}, max), max: max}
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
	_, ok := c.m[k]
	c.mu.Unlock()
	return ok
}

func (c *SigCache) add(k [32]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = struct{}{}
	c.mu.Unlock()
}
