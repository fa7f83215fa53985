// Package wire checks and produces the claim formats shared by ECT and ACT
// (spec/README.md "Common definitions"): UUIDs, hash values, NumericDates,
// audiences and action strings.
package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentctx/agentctx/internal/jsonx"
)

// IsUUID reports whether s is an RFC 9562 textual UUID: 36 characters,
// 8-4-4-4-12 hex digits, either case.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// NewUUID returns a random (version 4) UUID in lower case.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[v>>4], hex[v&0x0f])
	}
	return string(out)
}

// HashString returns the hash value (see agentctx.HashBytes) of the bytes
// of s.
func HashString(s string) string {
	d := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// IsHash reports whether s is a hash value: unpadded base64url, exactly 43
// characters, decoding canonically to 32 bytes. The 43rd character carries
// the last 4 bits of the digest and 2 zero bits, so its value is a multiple
// of 4.
func IsHash(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return strings.IndexByte("AEIMQUYcgkosw048", s[42]) >= 0
}

// IsActionString reports whether s is a valid ECT exec_act: 1..256 bytes
// without control characters [decision ECT-C7].
func IsActionString(s string) bool {
	if len(s) == 0 || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Audience decodes an aud value, a string or an array of strings. ok is false
// when the JSON type is wrong; the caller checks emptiness.
func Audience(m jsonx.Member) (aud []string, ok bool) {
	switch m.Kind {
	case jsonx.String:
		s, _ := jsonx.DecodeString(m.Value)
		return []string{s}, true
	case jsonx.Array:
		return jsonx.DecodeStrings(m.Value)
	}
	return nil, false
}

// NumericDate decodes an integer NumericDate; fractions, exponents and
// strings are refused.
func NumericDate(m jsonx.Member) (int64, bool) {
	if m.Kind != jsonx.Number {
		return 0, false
	}
	return jsonx.DecodeInt(m.Value)
}

// String decodes a JSON string member.
func String(m jsonx.Member) (string, bool) {
	if m.Kind != jsonx.String {
		return "", false
	}
	return jsonx.DecodeString(m.Value)
}

// Duration renders d for messages, rounded to what a person reads: seconds
// under a minute (42s), minutes and seconds under an hour (3m2s), hours and
// minutes under two days (26h5m), days and hours beyond (1113d7h).
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	d = d.Round(time.Hour)
	days, hours := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour)
	if hours == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

// Printable returns s with its control characters (C0 but tab, DEL, C1, and
// the Unicode line and paragraph separators) escaped as \uXXXX, so that a
// value from a token (an iss with ESC, CR or LF) cannot forge lines or
// drive a terminal in a text view.
func Printable(s string) string {
	bad := func(r rune) bool {
		return r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029'
	}
	if strings.IndexFunc(s, bad) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if bad(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
