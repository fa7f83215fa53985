package wire

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// TestIsHash agrees with a strict base64url decode to 32 bytes, on real
// digests and on every possible last character.
func TestIsHash(t *testing.T) {
	strict := base64.RawURLEncoding.Strict()
	for i := 0; i < 200; i++ {
		b := make([]byte, 32)
		rand.Read(b)
		h := base64.RawURLEncoding.EncodeToString(b)
		if !IsHash(h) {
			t.Fatalf("%s refused", h)
		}
		for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.") {
			v := h[:42] + string(c)
			d, err := strict.DecodeString(v)
			want := err == nil && len(d) == 32
			if IsHash(v) != want {
				t.Fatalf("%q: IsHash %v, strict decode %v", v, IsHash(v), want)
			}
		}
	}
	for _, bad := range []string{"", "sha-256:" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), base64.URLEncoding.EncodeToString(make([]byte, 32))} {
		if IsHash(bad) {
			t.Fatalf("%q accepted", bad)
		}
	}
}
