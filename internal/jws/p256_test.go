package jws

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"testing"

	"filippo.io/nistec"
)

func p256Same(t *testing.T, what string, tab *p256Table, pub *ecdsa.PublicKey, digest []byte, r, s *big.Int) {
	t.Helper()
	std := ecdsa.Verify(pub, digest, r, s)
	if got := tab.verify(digest, r, s); got != std {
		t.Fatalf("%s: the table says %v, crypto/ecdsa says %v (r %x, s %x)", what, got, std, r, s)
	}
}

// TestP256Differential: the table verifier accepts exactly what
// crypto/ecdsa accepts: valid signatures, high S (both accept it),
// corrupted r or s, r or s of 0, n, n+1 and beyond, another digest, a
// digest above the order, and the mixes.
func TestP256Differential(t *testing.T) {
	n := elliptic.P256().Params().N
	for i := 0; i < 60; i++ {
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub := &priv.PublicKey
		tab, ok := newP256Table(pub)
		if !ok {
			t.Fatal("no table")
		}
		digest := sha256.Sum256([]byte{byte(i), 'm'})
		r, s, _ := ecdsa.Sign(rand.Reader, priv, digest[:])
		p256Same(t, "valid", tab, pub, digest[:], r, s)
		p256Same(t, "high S", tab, pub, digest[:], r, new(big.Int).Sub(n, s))
		other := sha256.Sum256([]byte("other"))
		p256Same(t, "another digest", tab, pub, other[:], r, s)
		for _, bad := range []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Set(n), new(big.Int).Add(n, big.NewInt(1)),
			new(big.Int).Add(r, big.NewInt(1)), new(big.Int).Add(r, n), new(big.Int).Sub(n, big.NewInt(1))} {
			p256Same(t, "a changed r", tab, pub, digest[:], bad, s)
			p256Same(t, "a changed s", tab, pub, digest[:], r, bad)
		}
		// A digest above the order: reduced mod n by both.
		high := make([]byte, 32)
		for j := range high {
			high[j] = 0xff
		}
		r2, s2, _ := ecdsa.Sign(rand.Reader, priv, high)
		p256Same(t, "a digest above the order", tab, pub, high, r2, s2)
		// Another key's table.
		priv2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tab2, _ := newP256Table(&priv2.PublicKey)
		p256Same(t, "another key", tab2, &priv2.PublicKey, digest[:], r, s)
	}
}

// TestKeyCache: a key's table is built at its 40th use and then used;
// the cache stays bounded.
func TestKeyCache(t *testing.T) {
	c := NewKeyCache()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := 1; i < tableAfter; i++ {
		if c.table(&priv.PublicKey) != nil {
			t.Fatalf("a table at use %d", i)
		}
	}
	first := c.table(&priv.PublicKey)
	if first == nil || c.table(&priv.PublicKey) != first {
		t.Fatal("no table, or not the same one, after 40 uses")
	}
	for i := 0; i < maxTables+5; i++ {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for j := 0; j < tableAfter; j++ {
			c.table(&k.PublicKey)
		}
	}
	if len(c.tables) > maxTables {
		t.Fatalf("%d tables kept, at most %d", len(c.tables), maxTables)
	}
}

// FuzzP256Differential compares the table verifier with crypto/ecdsa on
// arbitrary digests and (r, s) for a fixed key.
func FuzzP256Differential(f *testing.F) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tab, _ := newP256Table(&priv.PublicKey)
	d := sha256.Sum256([]byte("seed"))
	r, s, _ := ecdsa.Sign(rand.Reader, priv, d[:])
	f.Add(d[:], r.Bytes(), s.Bytes())
	f.Add(d[:], []byte{0}, s.Bytes())
	f.Add(d[:], elliptic.P256().Params().N.Bytes(), s.Bytes())
	f.Fuzz(func(t *testing.T, digest, rb, sb []byte) {
		if len(digest) != 32 || len(rb) > 40 || len(sb) > 40 {
			return
		}
		p256Same(t, "fuzz", tab, &priv.PublicKey, digest, new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb))
	})
}

// BenchmarkES256 compares the table verifier with crypto/ecdsa.
func BenchmarkES256(b *testing.B) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("the signing input"))
	r, s, _ := ecdsa.Sign(rand.Reader, priv, d[:])
	tab, _ := newP256Table(&priv.PublicKey)
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&priv.PublicKey, d[:], r, s) {
				b.Fatal("no")
			}
		}
	})
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			if !tab.verify(d[:], r, s) {
				b.Fatal("no")
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			newP256Table(&priv.PublicKey)
		}
	})
}

// TestVerifyWithTable: through VerifyWith, a key past its 40th use is
// checked with its table, which still refuses a bad signature.
func TestVerifyWithTable(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := NewKeyCache()
	input := []byte("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0")
	sig, err := Sign(ES256, priv, input)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < tableAfter+5; i++ {
		if err := VerifyWith(c, ES256, &priv.PublicKey, input, sig); err != nil {
			t.Fatalf("use %d: %v", i, err)
		}
	}
	if c.tables[&priv.PublicKey] == nil {
		t.Fatal("no table after the uses")
	}
	bad := append([]byte(nil), sig...)
	bad[5] ^= 1
	if err := VerifyWith(c, ES256, &priv.PublicKey, input, bad); err == nil {
		t.Fatal("a bad signature verifies with the table")
	}
}

// TestP256TableMul: the table's k * Q equals nistec's constant-time
// ScalarMult for scalars at every window boundary, the extremes and
// random ones (the window arithmetic of mul, which verify's differential
// tests reach only through random u2).
func TestP256TableMul(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tab, ok := newP256Table(&priv.PublicKey)
	if !ok {
		t.Fatal("no table")
	}
	q, _ := nistec.NewP256Point().SetBytes(must(priv.PublicKey.Bytes()))
	var scalars [][]byte
	for _, v := range []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), big.NewInt(63), big.NewInt(64),
		new(big.Int).Sub(p256N, big.NewInt(1)), p256N, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))} {
		scalars = append(scalars, v.FillBytes(make([]byte, 32)))
	}
	for bit := 0; bit < 256; bit++ { // 2^bit and 2^bit - 1: every window edge
		one := new(big.Int).Lsh(big.NewInt(1), uint(bit))
		scalars = append(scalars, one.FillBytes(make([]byte, 32)), new(big.Int).Sub(one, big.NewInt(1)).FillBytes(make([]byte, 32)))
	}
	for i := 0; i < 200; i++ {
		k := make([]byte, 32)
		rand.Read(k)
		scalars = append(scalars, k)
	}
	for _, k := range scalars {
		want, err := nistec.NewP256Point().ScalarMult(q, k)
		if err != nil {
			t.Fatal(err)
		}
		if got := tab.mul(k); !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("k = %x: the table's product differs from ScalarMult", k)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
