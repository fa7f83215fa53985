package wire

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"
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

// TestDuration: messages round durations the way a person reads them.
func TestDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{1500 * time.Millisecond, "2s"},
		{-61 * time.Second, "1m1s"},
		{3*time.Minute + 2*time.Second, "3m2s"},
		{3*time.Hour + 2*time.Minute + 7*time.Second, "3h2m"},
		{26710*time.Hour + 53*time.Minute + 7*time.Second, "1112d23h"},
		{72 * time.Hour, "3d"},
	}
	for _, c := range cases {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
