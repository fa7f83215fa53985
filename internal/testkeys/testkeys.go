// Package testkeys holds fixed, public, test-only keys for tests, benchmarks
// and the generated test vectors. Never use them for anything else: their
// private halves are published in this repository.
package testkeys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"

	"github.com/agentctx/agentctx/trust"
)

// seed derives a 32-byte value from a label.
func seed(label string) []byte {
	s := sha256.Sum256([]byte("agentctx test key: " + label))
	return s[:]
}

// EdDSA returns the fixed Ed25519 test key named label, with key ID kid.
func EdDSA(label, kid string) *trust.SigningKey {
	k, err := trust.NewSigningKey(ed25519.NewKeyFromSeed(seed(label)), kid)
	if err != nil {
		panic(err)
	}
	return k
}

// ES256 returns the fixed P-256 test key named label, with key ID kid.
func ES256(label, kid string) *trust.SigningKey {
	d := seed(label)
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		panic(err) // a SHA-256 output is below the P-256 order with overwhelming probability
	}
	k, err := trust.NewSigningKey(priv, kid)
	if err != nil {
		panic(err)
	}
	return k
}
