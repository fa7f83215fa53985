package jws

import (
	"crypto/ed25519"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// stdlibAcceptSet makes curve25519-voi accept exactly what crypto/ed25519
// accepts (cofactorless verification, small-order and non-canonical A
// allowed, S < L required): a token valid here is valid for the standard
// library and the other way round (TestEd25519Differential,
// FuzzEd25519Differential).
var stdlibAcceptSet = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// verifyEd25519 checks sig over msg with pub, about 1.7x faster than
// crypto/ed25519 (issue "Past the standard library's floor"); with keys,
// the key is decompressed once.
func verifyEd25519(keys *KeyCache, pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	if x := keys.expanded(pub); x != nil {
		return voi.VerifyExpandedWithOptions(x, msg, sig, stdlibAcceptSet)
	}
	return voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig, stdlibAcceptSet)
}
