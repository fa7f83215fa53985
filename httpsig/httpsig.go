// Package httpsig implements HTTP Message Signatures (RFC 9421) and the
// WIMSE profile of them (draft-ietf-wimse-http-signature -07, spec
// transport.md TR-6): the signature base, signing and verification with
// Ed25519 and ECDSA P-256 (SHA-256, 64-byte r||s), Content-Digest (RFC
// 9530), and response signing bound to the request's nonce.
//
// The structured fields Signature-Input and Signature are read and written
// with github.com/dunglas/httpsfv. A signature base is, per covered
// component, one line
//
//	"<name>"[;req]: <value>
//
// followed by the line
//
//	"@signature-params": ("@method" "@path" ...);created=...;...
//
// with no final line break. Every failure is an *agentctx.Error with code
// httpsig_invalid (structure, parameters, components, digest),
// bad_signature, audience_mismatch, expired or replay, rule TR-6.
package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"

	"github.com/agentctx/agentctx"
)

// Algorithms (RFC 9421 §3.3).
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256-sha256"
)

// Component is one covered component: a derived component ("@method") or a
// field name (lower case), with Req set for a response component taken from
// the request (the ;req parameter).
type Component struct {
	Name string
	Req  bool
}

// Message is what a signature covers: a request, or a response with the
// request it answers (for @status and ;req components).
type Message struct {
	Request  *http.Request
	Response *http.Response // nil for a request
}

func (m Message) header(req bool) http.Header {
	if m.Response != nil && !req {
		return m.Response.Header
	}
	return m.Request.Header
}

func invalid(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", format, args...)
}

// value returns the component value of c in m (RFC 9421 §2).
func (m Message) value(c Component) (string, error) {
	if c.Req && m.Response == nil {
		return "", invalid("component %q;req on a request", c.Name)
	}
	r := m.Request
	if strings.HasPrefix(c.Name, "@") {
		if r == nil && c.Name != "@status" {
			return "", invalid("component %q needs the request", c.Name)
		}
		switch c.Name {
		case "@method":
			return r.Method, nil
		case "@path":
			p := r.URL.EscapedPath()
			if p == "" {
				p = "/"
			}
			return p, nil
		case "@query":
			return "?" + r.URL.RawQuery, nil
		case "@request-target":
			return r.URL.RequestURI(), nil
		case "@authority":
			return strings.ToLower(r.Host), nil
		case "@scheme":
			return scheme(r), nil
		case "@target-uri":
			return scheme(r) + "://" + strings.ToLower(r.Host) + r.URL.RequestURI(), nil
		case "@status":
			if m.Response == nil || c.Req {
				return "", invalid("@status is a response component")
			}
			return strconv.Itoa(m.Response.StatusCode), nil
		}
		return "", invalid("derived component %q is not supported", c.Name)
	}
	h := m.header(c.Req)
	vals, ok := h[http.CanonicalHeaderKey(c.Name)]
	if !ok {
		switch {
		case c.Name == "host" && (m.Response == nil || c.Req):
			return strings.ToLower(r.Host), nil
		case c.Name == "content-length" && m.Response == nil && r.ContentLength >= 0 && r.Body != nil:
			return strconv.FormatInt(r.ContentLength, 10), nil
		case c.Name == "content-length" && m.Response != nil && !c.Req && m.Response.ContentLength >= 0:
			return strconv.FormatInt(m.Response.ContentLength, 10), nil
		}
		return "", invalid("covered field %q is not in the message", c.Name)
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strings.TrimSpace(v)
	}
	return strings.Join(parts, ", "), nil
}

func scheme(r *http.Request) string {
	if r.URL.Scheme != "" {
		return r.URL.Scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// innerList builds the Signature-Input member of components and params.
func innerList(comps []Component, params *httpsfv.Params) httpsfv.InnerList {
	items := make([]httpsfv.Item, len(comps))
	for i, c := range comps {
		it := httpsfv.NewItem(c.Name)
		if c.Req {
			it.Params.Add("req", true)
		}
		items[i] = it
	}
	return httpsfv.InnerList{Items: items, Params: params}
}

// Base returns the signature base of m for comps and params (RFC 9421
// §2.5).
func Base(m Message, comps []Component, params *httpsfv.Params) ([]byte, error) {
	var b strings.Builder
	seen := map[Component]bool{}
	for _, c := range comps {
		if seen[c] {
			return nil, invalid("component %q is covered twice", c.Name)
		}
		seen[c] = true
		v, err := m.value(c)
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, invalid("component %q holds a line break", c.Name)
		}
		b.WriteString(strconv.Quote(c.Name))
		if c.Req {
			b.WriteString(";req")
		}
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	sp, err := httpsfv.Marshal(httpsfv.List{innerList(comps, params)})
	if err != nil {
		return nil, invalid("signature parameters: %v", err)
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(sp)
	return []byte(b.String()), nil
}

// AlgFor returns the RFC 9421 algorithm of a JOSE alg (ES256, EdDSA,
// Ed25519), as the WIMSE profile maps a WIT's cnf.jwk.alg.
func AlgFor(joseAlg string) (string, error) {
	switch joseAlg {
	case "ES256":
		return AlgECDSAP256, nil
	case "EdDSA", "Ed25519":
		return AlgEd25519, nil
	}
	return "", invalid("key algorithm %q has no HTTP signature algorithm", joseAlg)
}

// signBase signs base with key under alg.
func signBase(alg string, key crypto.Signer, base []byte) ([]byte, error) {
	switch alg {
	case AlgEd25519:
		k, ok := key.(ed25519.PrivateKey)
		if !ok {
			return key.Sign(rand.Reader, base, crypto.Hash(0))
		}
		return ed25519.Sign(k, base), nil
	case AlgECDSAP256:
		pub, ok := key.Public().(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, errors.New("httpsig: ecdsa-p256-sha256 needs a P-256 key")
		}
		d := sha256.Sum256(base)
		der, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		r, s, err := parseDER(der)
		if err != nil {
			return nil, err
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, fmt.Errorf("httpsig: algorithm %q is not supported", alg)
}

// verifyBase checks sig over base with pub under alg.
func verifyBase(alg string, pub crypto.PublicKey, base, sig []byte) bool {
	switch alg {
	case AlgEd25519:
		k, ok := pub.(ed25519.PublicKey)
		return ok && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, base, sig)
	case AlgECDSAP256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != elliptic.P256() || len(sig) != 64 {
			return false
		}
		d := sha256.Sum256(base)
		return ecdsa.Verify(k, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	return false
}

// Signature is one signature of a message: its label, covered components,
// parameters and value.
type Signature struct {
	Label      string
	Components []Component
	Params     *httpsfv.Params
	Value      []byte
}

// Param returns the parameter name, and whether it is present.
func (s *Signature) Param(name string) (any, bool) { return s.Params.Get(name) }

// Sign signs m with key under alg as label and adds the signature to the
// message's Signature-Input and Signature fields (existing members kept).
func Sign(m Message, label string, comps []Component, params *httpsfv.Params, alg string, key crypto.Signer) error {
	base, err := Base(m, comps, params)
	if err != nil {
		return err
	}
	sig, err := signBase(alg, key, base)
	if err != nil {
		return err
	}
	h := m.header(false)
	in, err := dictionary(h, "Signature-Input")
	if err != nil {
		return err
	}
	out, err := dictionary(h, "Signature")
	if err != nil {
		return err
	}
	in.Add(label, innerList(comps, params))
	out.Add(label, httpsfv.NewItem(sig))
	si, err := httpsfv.Marshal(in)
	if err != nil {
		return err
	}
	so, err := httpsfv.Marshal(out)
	if err != nil {
		return err
	}
	h.Set("Signature-Input", si)
	h.Set("Signature", so)
	return nil
}

func dictionary(h http.Header, name string) (*httpsfv.Dictionary, error) {
	vals := h.Values(name)
	if len(vals) == 0 {
		return httpsfv.NewDictionary(), nil
	}
	d, err := httpsfv.UnmarshalDictionary(vals)
	if err != nil {
		return nil, invalid("%s is not a structured dictionary: %v", name, err)
	}
	return d, nil
}

// Signatures parses every signature of the message (the members of
// Signature-Input with their Signature values).
func Signatures(m Message) ([]*Signature, error) {
	h := m.header(false)
	in, err := dictionary(h, "Signature-Input")
	if err != nil {
		return nil, err
	}
	vals, err := dictionary(h, "Signature")
	if err != nil {
		return nil, err
	}
	var out []*Signature
	for _, label := range in.Names() {
		mem, _ := in.Get(label)
		il, ok := mem.(httpsfv.InnerList)
		if !ok {
			return nil, invalid("Signature-Input %q is not an inner list", label)
		}
		s := &Signature{Label: label, Params: il.Params}
		for _, it := range il.Items {
			name, ok := it.Value.(string)
			if !ok {
				return nil, invalid("Signature-Input %q: a component is not a string", label)
			}
			c := Component{Name: name}
			for _, p := range it.Params.Names() {
				v, _ := it.Params.Get(p)
				if p != "req" || v != true {
					return nil, invalid("Signature-Input %q: component parameter %q is not supported", label, p)
				}
				c.Req = true
			}
			if name != strings.ToLower(name) {
				return nil, invalid("Signature-Input %q: component %q is not lower case", label, name)
			}
			s.Components = append(s.Components, c)
		}
		sv, ok := vals.Get(label)
		if !ok {
			return nil, invalid("Signature has no value for %q", label)
		}
		item, ok := sv.(httpsfv.Item)
		if !ok {
			return nil, invalid("Signature %q is not a byte sequence", label)
		}
		if s.Value, ok = item.Value.([]byte); !ok {
			return nil, invalid("Signature %q is not a byte sequence", label)
		}
		out = append(out, s)
	}
	for _, label := range vals.Names() {
		if _, ok := in.Get(label); !ok {
			return nil, invalid("Signature %q has no Signature-Input", label)
		}
	}
	return out, nil
}

// Verify checks s on m with pub under alg: the signature base rebuilt from
// the message and the signature value.
func Verify(m Message, s *Signature, alg string, pub crypto.PublicKey) error {
	base, err := Base(m, s.Components, s.Params)
	if err != nil {
		return err
	}
	if !verifyBase(alg, pub, base, s.Value) {
		return agentctx.Errorf(agentctx.CodeBadSignature, "TR-6", "", "HTTP message signature %q does not verify", s.Label)
	}
	return nil
}

// ContentDigest returns the Content-Digest field value of body (RFC 9530,
// sha-256).
func ContentDigest(body []byte) string {
	d := sha256.Sum256(body)
	v, _ := httpsfv.Marshal(dictOf("sha-256", d[:]))
	return v
}

func dictOf(name string, b []byte) *httpsfv.Dictionary {
	d := httpsfv.NewDictionary()
	d.Add(name, httpsfv.NewItem(b))
	return d
}

// CheckContentDigest recomputes the digest of body against the field value
// (sha-256 and sha-512 accepted; every listed supported digest must match,
// and at least one must be supported).
func CheckContentDigest(field string, body []byte) error {
	d, err := httpsfv.UnmarshalDictionary([]string{field})
	if err != nil {
		return invalid("Content-Digest is not a structured dictionary: %v", err)
	}
	checked := 0
	for _, name := range d.Names() {
		mem, _ := d.Get(name)
		it, ok := mem.(httpsfv.Item)
		if !ok {
			return invalid("Content-Digest %q is not a byte sequence", name)
		}
		want, ok := it.Value.([]byte)
		if !ok {
			return invalid("Content-Digest %q is not a byte sequence", name)
		}
		var got []byte
		switch name {
		case "sha-256":
			s := sha256.Sum256(body)
			got = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			got = s[:]
		default:
			continue
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return invalid("the body does not match its Content-Digest (%s)", name)
		}
		checked++
	}
	if checked == 0 {
		return invalid("Content-Digest has no sha-256 or sha-512 digest")
	}
	return nil
}

// parseDER reads an ASN.1 ECDSA signature.
func parseDER(der []byte) (*big.Int, *big.Int, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, nil, errors.New("httpsig: the signer returned no valid ECDSA signature")
	}
	return rs.R, rs.S, nil
}
