// Package testkeys holds fixed, public, test-only keys for tests, benchmarks
// and the generated test vectors. Never use them for anything else: their
// private halves are published in this repository.
package testkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"io"
	"testing"

	"github.com/agentctx/agentctx/internal/jws"
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

// Deterministic returns k signing ES256 with RFC 6979 deterministic
// signatures (Ed25519 is deterministic already): reproducible test vectors.
func Deterministic(k *trust.SigningKey) *trust.SigningKey {
	p, ok := k.Signer().(*ecdsa.PrivateKey)
	if !ok {
		return k
	}
	d, err := trust.NewSigningKey(rfc6979{p}, k.KeyID())
	if err != nil {
		panic(err)
	}
	return d
}

// rfc6979 signs with no randomness: crypto/ecdsa then follows RFC 6979.
type rfc6979 struct{ key *ecdsa.PrivateKey }

func (r rfc6979) Public() crypto.PublicKey { return r.key.Public() }

func (r rfc6979) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return r.key.Sign(nil, digest, opts)
}

// SignJSON signs arbitrary header and payload values (JSON-encoded, or
// []byte taken as they are) with key: tokens that Create would refuse, for
// tests of the verifiers' refusals.
func SignJSON(tb testing.TB, key *trust.SigningKey, header, payload any) string {
	tb.Helper()
	enc := func(v any) []byte {
		if b, ok := v.([]byte); ok {
			return b
		}
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	tok, err := jws.Encode(key.Alg(), key.Signer(), enc(header), enc(payload))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}
