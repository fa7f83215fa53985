// Package jsonx is a strict, allocation-light JSON reader for token headers and
// payloads.
//
// It accepts exactly RFC 8259 JSON text encoded as UTF-8, and additionally
// rejects what a JOSE verifier must not tolerate: duplicate member names in any
// object at any depth (parser-differential attacks), nesting deeper than
// MaxDepth, and trailing data. Values are returned as raw byte slices of the
// input, so callers keep the exact bytes and decode only what they read.
package jsonx

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Memory: member names and decoded strings are copies, never views of the
// input, so what a verifier returns stays what was verified even if the
// input buffer changes afterwards (spec README). Member values are views of
// the input: the caller owns it and must not change it while it reads them.

// MaxDepth bounds the nesting of arrays and objects accepted anywhere.
const MaxDepth = 64

// Kind is the JSON type of a value.
type Kind uint8

// The JSON value kinds.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"invalid", "null", "boolean", "number", "string", "array", "object"}

// String returns the JSON name of the kind ("object", "string", ...).
func (k Kind) String() string { return kindNames[k] }

// Member is one member of a JSON object: its decoded name and its raw value.
type Member struct {
	Name  string
	Value []byte
	Kind  Kind
}

// ErrSyntax is wrapped by every error of this package.
var ErrSyntax = errors.New("invalid JSON")

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) errf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, fmt.Sprintf(format, args...), s.pos)
}

// ParseObject checks that data is exactly one JSON object and returns its
// members in document order.
func ParseObject(data []byte) ([]Member, error) {
	s := scanner{data: data}
	s.skipWS()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return nil, s.errf("expected a JSON object")
	}
	// Every member has a ':'; nested ones make this an over-estimate, capped.
	members := make([]Member, 0, min(bytes.Count(data, []byte{':'}), 24))
	if err := s.object(1, &members); err != nil {
		return nil, err
	}
	s.skipWS()
	if s.pos != len(data) {
		return nil, s.errf("trailing data after the object")
	}
	return members, nil
}

// Validate checks that data is exactly one JSON value of any kind, under the
// same rules as ParseObject, and returns its kind and nesting depth (scalars
// have depth 0, an object or array with only scalars inside has depth 1).
func Validate(data []byte) (Kind, int, error) {
	s := scanner{data: data}
	s.skipWS()
	k, depth, err := s.value(1, nil)
	if err != nil {
		return Invalid, 0, err
	}
	s.skipWS()
	if s.pos != len(data) {
		return Invalid, 0, s.errf("trailing data after the value")
	}
	return k, depth, nil
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value starting at s.pos. level is the nesting level the
// value would occupy if it were a container. It returns the depth of the value
// itself (0 for scalars). When top is non-nil and the value is an object, its
// members are appended to *top.
func (s *scanner) value(level int, top *[]Member) (Kind, int, error) {
	if s.pos >= len(s.data) {
		return Invalid, 0, s.errf("unexpected end of input")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		d, err := s.objectDepth(level, top)
		return Object, d, err
	case c == '[':
		d, err := s.array(level)
		return Array, d, err
	case c == '"':
		_, _, err := s.str()
		return String, 0, err
	case c == 't':
		return Bool, 0, s.lit("true")
	case c == 'f':
		return Bool, 0, s.lit("false")
	case c == 'n':
		return Null, 0, s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return Number, 0, s.number()
	default:
		return Invalid, 0, s.errf("unexpected character %q", c)
	}
}

func (s *scanner) lit(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errf("invalid literal")
	}
	s.pos += len(word)
	return nil
}

func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return s.errf("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		start := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		if s.pos == start {
			return s.errf("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		start := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		if s.pos == start {
			return s.errf("invalid number")
		}
	}
	return nil
}

// str scans a string at s.pos and returns its raw contents (between the
// quotes) and whether it contains escapes.
func (s *scanner) str() ([]byte, bool, error) {
	d := s.data
	s.pos++ // opening quote
	start := s.pos
	escaped := false
	for s.pos < len(d) {
		// Fast path: a run of printable ASCII without quote or backslash.
		for s.pos < len(d) && plainASCII[d[s.pos]] {
			s.pos++
		}
		if s.pos >= len(d) {
			break
		}
		c := d[s.pos]
		switch {
		case c == '"':
			raw := d[start:s.pos]
			s.pos++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			s.pos++
			if s.pos >= len(d) {
				return nil, false, s.errf("unterminated string")
			}
			switch d[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if len(d)-s.pos < 5 || !isHex4(d[s.pos+1:s.pos+5]) {
					return nil, false, s.errf("invalid \\u escape")
				}
				s.pos += 5
			default:
				return nil, false, s.errf("invalid escape")
			}
		case c < 0x20:
			return nil, false, s.errf("control character in string")
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, size := utf8.DecodeRune(d[s.pos:])
			if r == utf8.RuneError && size <= 1 {
				return nil, false, s.errf("invalid UTF-8")
			}
			s.pos += size
		}
	}
	return nil, false, s.errf("unterminated string")
}

// plainASCII marks the string bytes that need no further look: printable
// ASCII other than '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// open consumes the opening byte of a container at s.pos, and its closing
// byte too when the container is empty.
func (s *scanner) open(level int, closing byte) (empty bool, err error) {
	if level > MaxDepth {
		return false, s.errf("nesting deeper than %d", MaxDepth)
	}
	s.pos++
	s.skipWS()
	if s.pos < len(s.data) && s.data[s.pos] == closing {
		s.pos++
		return true, nil
	}
	return false, nil
}

// separator consumes the ',' between two elements, or the closing byte, and
// reports whether the container ended.
func (s *scanner) separator(closing byte) (done bool, err error) {
	s.skipWS()
	if s.pos >= len(s.data) {
		return false, s.errf("unterminated %c container", closing)
	}
	switch s.data[s.pos] {
	case ',':
		s.pos++
		return false, nil
	case closing:
		s.pos++
		return true, nil
	}
	return false, s.errf("expected ',' or '%c'", closing)
}

func (s *scanner) object(level int, top *[]Member) error {
	_, err := s.objectDepth(level, top)
	return err
}

func (s *scanner) objectDepth(level int, top *[]Member) (int, error) {
	depth := 1
	if empty, err := s.open(level, '}'); empty || err != nil {
		return depth, err
	}
	var small [16]string
	names := small[:0]
	var seen map[string]string // lower-cased name -> name
	for {
		s.skipWS()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return 0, s.errf("expected a member name")
		}
		raw, esc, err := s.str()
		if err != nil {
			return 0, err
		}
		name := aliasString(raw)
		if esc {
			name = unescape(raw)
		}
		// SPEC: README "Duplicate member names ... are rejected", and names
		// that differ only in ASCII case (a case-insensitive decoder would
		// read the other one).
		if seen != nil {
			k := lowerASCII(name)
			if prev, dup := seen[k]; dup {
				return 0, dupErr(s, prev, name)
			}
			seen[k] = name
		} else {
			for _, n := range names {
				if EqualFoldASCII(n, name) {
					return 0, dupErr(s, n, name)
				}
			}
			names = append(names, name)
			if len(names) > 16 {
				seen = make(map[string]string, 32)
				for _, n := range names {
					seen[lowerASCII(n)] = n
				}
			}
		}
		s.skipWS()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return 0, s.errf("expected ':'")
		}
		s.pos++
		s.skipWS()
		vstart := s.pos
		k, d, err := s.value(level+1, nil)
		if err != nil {
			return 0, err
		}
		if d+1 > depth {
			depth = d + 1
		}
		if top != nil {
			*top = append(*top, Member{Name: name, Value: s.data[vstart:s.pos], Kind: k})
		}
		if done, err := s.separator('}'); done || err != nil {
			return depth, err
		}
	}
}

func (s *scanner) array(level int) (int, error) {
	depth := 1
	if empty, err := s.open(level, ']'); empty || err != nil {
		return depth, err
	}
	for {
		s.skipWS()
		_, d, err := s.value(level+1, nil)
		if err != nil {
			return 0, err
		}
		if d+1 > depth {
			depth = d + 1
		}
		if done, err := s.separator(']'); done || err != nil {
			return depth, err
		}
	}
}

// unescape decodes the contents of a JSON string already validated by str.
func unescape(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := rune(hexVal(raw[i+1 : i+5]))
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 = rune(hexVal(raw[i+3 : i+7]))
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, raw[i])
		}
	}
	return string(out)
}

func hexVal(b []byte) uint32 {
	var v uint32
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint32(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint32(c - 'a' + 10)
		default:
			v |= uint32(c - 'A' + 10)
		}
	}
	return v
}

// DecodeString decodes a raw JSON string value (as returned in Member.Value).
func DecodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '\\' {
			return unescape(body), true
		}
	}
	return aliasString(body), true
}

// DecodeInt decodes a raw JSON number that is written as an integer (no fraction,
// no exponent) and fits in an int64.
func DecodeInt(raw []byte) (int64, bool) {
	for i, c := range raw {
		if !(c >= '0' && c <= '9' || (c == '-' && i == 0)) {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	return v, err == nil
}

// DecodeStrings decodes a raw JSON array whose elements are all strings. The array
// must already have been validated.
func DecodeStrings(raw []byte) ([]string, bool) {
	s := scanner{data: raw}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	s.pos = 1
	out := make([]string, 0, bytes.Count(raw, []byte{','})+1)
	s.skipWS()
	if s.pos < len(raw) && raw[s.pos] == ']' {
		return []string{}, true
	}
	for {
		s.skipWS()
		if s.pos >= len(raw) || raw[s.pos] != '"' {
			return nil, false
		}
		body, esc, err := s.str()
		if err != nil {
			return nil, false
		}
		if esc {
			out = append(out, unescape(body))
		} else {
			out = append(out, aliasString(body))
		}
		s.skipWS()
		if s.pos >= len(raw) {
			return nil, false
		}
		if raw[s.pos] == ']' {
			return out, true
		}
		if raw[s.pos] != ',' {
			return nil, false
		}
		s.pos++
	}
}

func dupErr(s *scanner, prev, name string) error {
	if prev == name {
		return s.errf("duplicate member name %q", name)
	}
	return s.errf("member names %q and %q differ only in case", prev, name)
}

// lowerASCII lower-cases the ASCII letters of s.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// EqualFoldASCII compares a and b with ASCII case folding only: no Unicode
// folding, under which "ſ" would match "s".
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// aliasString returns b as a string (a copy: see "Memory").
func aliasString(b []byte) string { return string(b) }

// eachElement scans the JSON array raw, calling elem with the scanner
// positioned at each element; elem must consume exactly that element. It
// reports false when raw is not such an array.
func eachElement(raw []byte, elem func(s *scanner) bool) bool {
	s := scanner{data: raw}
	s.skipWS()
	if s.pos >= len(raw) || raw[s.pos] != '[' {
		return false
	}
	if empty, err := s.open(1, ']'); err != nil {
		return false
	} else if empty {
		return true
	}
	for {
		s.skipWS()
		if !elem(&s) {
			return false
		}
		if done, err := s.separator(']'); err != nil {
			return false
		} else if done {
			return true
		}
	}
}

// Elements returns the raw elements of a JSON array that was already
// validated (as a Member value); ok is false when raw is not an array.
func Elements(raw []byte) ([][]byte, bool) {
	elems := [][]byte{}
	ok := eachElement(raw, func(s *scanner) bool {
		start := s.pos
		if _, _, err := s.value(2, nil); err != nil {
			return false
		}
		elems = append(elems, raw[start:s.pos])
		return true
	})
	if !ok {
		return nil, false
	}
	return elems, true
}

// KindOf returns the kind of a raw JSON value from its first byte.
func KindOf(raw []byte) Kind {
	for _, c := range raw {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '{':
			return Object
		case c == '[':
			return Array
		case c == '"':
			return String
		case c == 't' || c == 'f':
			return Bool
		case c == 'n':
			return Null
		case c == '-' || c >= '0' && c <= '9':
			return Number
		}
		return Invalid
	}
	return Invalid
}

// ObjectsInArray returns the members of every element of a JSON array
// whose elements are all objects, reading the array once. ok is false when
// raw is not such an array. Like ParseObject it refuses duplicate names.
func ObjectsInArray(raw []byte) ([][]Member, bool) {
	objs := [][]Member{}
	ok := eachElement(raw, func(s *scanner) bool {
		if s.pos >= len(s.data) || s.data[s.pos] != '{' {
			return false
		}
		ms := make([]Member, 0, 4)
		if _, err := s.objectDepth(2, &ms); err != nil {
			return false
		}
		objs = append(objs, ms)
		return true
	})
	if !ok {
		return nil, false
	}
	return objs, true
}
