package agentctx

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
)

// HashBytes returns the profile's hash value of b: the unpadded base64url
// encoding of its SHA-256 digest, 43 characters, no algorithm prefix. Use it
// for inp_hash and out_hash (ECT-K2): hash the exact bytes, never type a hash
// by hand.
func HashBytes(b []byte) string {
	d := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// HashReader returns the hash value (see HashBytes) of everything read from r.
func HashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}
