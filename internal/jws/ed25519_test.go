package jws

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// smallOrder are encodings of the eight points of small order on
// Curve25519's Edwards form, with non-canonical encodings of some of them
// (y >= p, the sign bit set on x = 0): the inputs where Ed25519
// implementations disagree.
var smallOrder = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"0100000000000000000000000000000000000000000000000000000000000080",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
}

// groupOrder is L, little endian: an S >= L is not canonical.
const groupOrder = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"

// same checks both paths, the key decompressed per check and once
// (expandedKeys), against crypto/ed25519.
func same(t *testing.T, what string, pub, msg, sig []byte) {
	t.Helper()
	std := len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
	if got := verifyEd25519(nil, pub, msg, sig); got != std {
		t.Fatalf("%s: this verifier says %v, crypto/ed25519 says %v\npub %x\nsig %x", what, got, std, pub, sig)
	}
	if got := verifyEd25519(expandedKeys, pub, msg, sig); got != std {
		t.Fatalf("%s, the key expanded: this verifier says %v, crypto/ed25519 says %v\npub %x\nsig %x", what, got, std, pub, sig)
	}
}

var expandedKeys = NewKeyCache()

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestEd25519Differential: the fast Ed25519 verifier accepts exactly what
// crypto/ed25519 accepts, on valid signatures, corrupted ones, small-order
// and non-canonical keys and R, S out of range, and every mix of them.
func TestEd25519Differential(t *testing.T) {
	msg := []byte("the signing input")
	for i := 0; i < 300; i++ {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		sig := ed25519.Sign(priv, msg)
		same(t, "valid", pub, msg, sig)
		bad := append([]byte(nil), sig...)
		bad[i%64] ^= byte(1 << (i % 8))
		same(t, "a flipped signature bit", pub, msg, bad)
		same(t, "another message", pub, []byte("other"), sig)
		// S + L: the same point, a non-canonical scalar.
		hi := append([]byte(nil), sig...)
		var carry int
		for j, l := range unhex(groupOrder) {
			v := int(hi[32+j]) + int(l) + carry
			hi[32+j], carry = byte(v), v>>8
		}
		same(t, "S + L", pub, msg, hi)
	}
	zeroS := make([]byte, 32)
	for _, a := range smallOrder {
		for _, r := range smallOrder {
			sig := append(unhex(r), zeroS...)
			same(t, "small-order A and R, S = 0", unhex(a), msg, sig)
			s1 := append(unhex(r), unhex("0100000000000000000000000000000000000000000000000000000000000000")...)
			same(t, "small-order A and R, S = 1", unhex(a), msg, s1)
		}
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		sig := ed25519.Sign(priv, msg)
		same(t, "a small-order A with a real signature", unhex(a), msg, sig)
		withR := append(unhex(a), sig[32:]...)
		same(t, "a small-order R", pub, msg, withR)
	}
	same(t, "a short key", make([]byte, 31), msg, make([]byte, 64))
	same(t, "a short signature", make([]byte, 32), msg, make([]byte, 63))
}

// FuzzEd25519Differential compares the two verifiers on arbitrary keys,
// messages and signatures (seeds: a valid signature, small-order points).
func FuzzEd25519Differential(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("seed")
	f.Add([]byte(pub), msg, ed25519.Sign(priv, msg))
	for _, a := range smallOrder[:4] {
		f.Add(unhex(a), msg, append(unhex(a), make([]byte, 32)...))
	}
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) { same(t, "fuzz", pub, msg, sig) })
}

// BenchmarkEd25519 compares the Ed25519 verifier with crypto/ed25519 on
// the same signature (issue "Past the standard library's floor").
func BenchmarkEd25519(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("eyJhbGciOiJFZERTQSIsImtpZCI6ImEtMSIsInR5cCI6ImV4ZWMrand0In0.eyJpc3MiOiJzcGlmZmU6Ly9leGFtcGxlLmNvbS9hZ2VudC9hIn0")
	sig := ed25519.Sign(priv, msg)
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("no")
			}
		}
	})
	b.Run("agentctx", func(b *testing.B) {
		for b.Loop() {
			if !verifyEd25519(nil, pub, msg, sig) {
				b.Fatal("no")
			}
		}
	})
	keys := NewKeyCache()
	b.Run("agentctx-expanded", func(b *testing.B) {
		for b.Loop() {
			if !verifyEd25519(keys, pub, msg, sig) {
				b.Fatal("no")
			}
		}
	})
}
