package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"math/big"
	"sync"

	"filippo.io/nistec"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// ES256 verification with a per-key precomputed table (issue "Past the
// standard library's floor"). Every input of a signature check is public
// (the key, the message, the signature), so the key's multiple may be
// computed in variable time: a table of j * 16^i * Q (i < 64, 1 <= j <= 15)
// turns u2 * Q into at most 64 additions. The check itself is the standard
// library's: r and s in [1, n-1], R = u1*G + u2*Q not the point at
// infinity, x(R) mod n == r; TestP256Differential and FuzzP256Differential
// compare it with crypto/ecdsa.

// p256N is the order of P-256's base point.
var p256N = elliptic.P256().Params().N

// p256Table holds j * 16^i * Q at [i][j-1].
type p256Table [64][15]*nistec.P256Point

func newP256Table(pub *ecdsa.PublicKey) (*p256Table, bool) {
	b, err := pub.Bytes() // uncompressed, checked on the curve when the key was made
	if err != nil {
		return nil, false
	}
	base, err := nistec.NewP256Point().SetBytes(b)
	if err != nil {
		return nil, false
	}
	t := &p256Table{}
	for i := 0; i < 64; i++ {
		t[i][0] = nistec.NewP256Point().Set(base)
		for j := 1; j < 15; j++ {
			t[i][j] = nistec.NewP256Point().Add(t[i][j-1], base)
		}
		for k := 0; k < 4; k++ { // base = 16 * base
			base.Double(base)
		}
	}
	return t, true
}

// mul returns k * Q for a 32-byte big-endian scalar k, in variable time.
func (t *p256Table) mul(k []byte) *nistec.P256Point {
	acc := nistec.NewP256Point()
	for i := 0; i < 64; i++ {
		b := k[31-i/2]
		nib := b & 0x0f
		if i%2 == 1 {
			nib = b >> 4
		}
		if nib != 0 {
			acc.Add(acc, t[i][nib-1])
		}
	}
	return acc
}

// verify checks (r, s) over digest (a SHA-256 hash) as crypto/ecdsa does.
func (t *p256Table) verify(digest []byte, r, s *big.Int) bool {
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(p256N) >= 0 || s.Cmp(p256N) >= 0 {
		return false
	}
	e := new(big.Int).SetBytes(digest) // 256 bits: the order's length, nothing to truncate
	w := new(big.Int).ModInverse(s, p256N)
	if w == nil {
		return false
	}
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, p256N)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, p256N)
	var b1, b2 [32]byte
	p, err := nistec.NewP256Point().ScalarBaseMult(u1.FillBytes(b1[:]))
	if err != nil {
		return false
	}
	p.Add(p, t.mul(u2.FillBytes(b2[:])))
	x, err := p.BytesX() // an error for the point at infinity
	if err != nil {
		return false
	}
	v := new(big.Int).SetBytes(x)
	v.Mod(v, p256N)
	return v.Cmp(r) == 0
}

// KeyCache keeps per-key precomputation for signature checks: a P-256
// key's table is built on its 40th use (it pays off after about that many)
// and at most maxTables are kept; uses are counted for at most maxCounted
// keys. A verifier owns one; it is safe for concurrent use.
type KeyCache struct {
	mu     sync.Mutex
	uses   map[*ecdsa.PublicKey]int
	tables map[*ecdsa.PublicKey]*p256Table
	// ed holds Ed25519 keys decompressed once (worth it from the second
	// use), at most maxExpanded.
	ed map[string]*voi.ExpandedPublicKey
}

const (
	tableAfter  = 40
	maxTables   = 32
	maxCounted  = 4096
	maxExpanded = 1024
)

// NewKeyCache returns an empty cache (its maps are made on first use).
func NewKeyCache() *KeyCache { return &KeyCache{} }

// table returns pub's table once it has been used often enough.
func (c *KeyCache) table(pub *ecdsa.PublicKey) *p256Table {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if t, ok := c.tables[pub]; ok {
		c.mu.Unlock()
		return t
	}
	if c.uses == nil {
		c.uses, c.tables = map[*ecdsa.PublicKey]int{}, map[*ecdsa.PublicKey]*p256Table{}
	}
	if len(c.uses) >= maxCounted {
		clear(c.uses)
	}
	c.uses[pub]++
	build := c.uses[pub] == tableAfter
	c.mu.Unlock()
	if !build {
		return nil
	}
	t, ok := newP256Table(pub)
	if !ok {
		return nil
	}
	c.mu.Lock()
	if len(c.tables) >= maxTables {
		for k := range c.tables { // drop one: bounded, and the next use rebuilds
			delete(c.tables, k)
			break
		}
	}
	c.tables[pub] = t
	delete(c.uses, pub)
	c.mu.Unlock()
	return t
}

// expanded returns pub decompressed, from the cache when it is there (nil
// when the key does not decode; the caller then checks without it).
func (c *KeyCache) expanded(pub []byte) *voi.ExpandedPublicKey {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	x, ok := c.ed[string(pub)]
	c.mu.Unlock()
	if ok {
		return x
	}
	x, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		return nil
	}
	c.mu.Lock()
	if c.ed == nil {
		c.ed = map[string]*voi.ExpandedPublicKey{}
	}
	if len(c.ed) >= maxExpanded {
		clear(c.ed)
	}
	c.ed[string(pub)] = x
	c.mu.Unlock()
	return x
}
