package trust_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

func cert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, pub any, signer any) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl // self-signed
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestX509Profile covers TR-7's X.509 source: an ECT whose x5c chain
// validates to a configured root, with the issuer as the leaf's one URI
// SAN and the SPIFFE leaf rules, verifies with the leaf's key; anything
// else is unknown_key.
func TestX509Profile(t *testing.T) {
	now := time.Unix(1767225600, 0)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := cert(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &caKey.PublicKey, caKey)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCA := cert(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "other"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &other.PublicKey, other)
	leafKey := testkeys.ES256("x509 leaf", "leaf-1")
	const iss = "spiffe://example.com/agent/x"
	mkLeaf := func(san string, parent *x509.Certificate, signer any, isCA bool) *x509.Certificate {
		su, _ := url.Parse(san)
		return cert(t, &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			URIs: []*url.URL{su}, KeyUsage: x509.KeyUsageDigitalSignature, IsCA: isCA, BasicConstraintsValid: true}, parent, leafKey.Public().Public, signer)
	}
	pemCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	file, _ := json.Marshal(map[string]any{"issuers": []any{map[string]any{"prefix": "spiffe://example.com/", "x509_roots": pemCA}}})
	set, err := trust.ParseFileWith(file, trust.Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ect.NewVerifier(ect.Config{Trust: set, Audience: "b", Clock: func() time.Time { return now }})
	sign := func(chain ...*x509.Certificate) string {
		var x5c []string
		for _, c := range chain {
			x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
		}
		h := map[string]any{"alg": "ES256", "kid": "leaf-1", "typ": "exec+jwt", "x5c": x5c}
		p := map[string]any{"iss": iss, "aud": "b", "iat": now.Unix(), "exp": now.Unix() + 600, "jti": "0b7c5e4e-5f7a-4c1e-9d55-8b8c0f4a2e11", "exec_act": "x", "pred": []string{}}
		return testkeys.SignJSON(t, leafKey, h, p)
	}
	if _, err := v.Verify(context.Background(), sign(mkLeaf(iss, ca, caKey, false))); err != nil {
		t.Fatalf("TR-7: a chain to the root: %v", err)
	}
	for name, tok := range map[string]string{
		"another SAN":         sign(mkLeaf("spiffe://example.com/agent/y", ca, caKey, false)),
		"an untrusted root":   sign(mkLeaf(iss, otherCA, other, false)),
		"a CA as SPIFFE leaf": sign(mkLeaf(iss, ca, caKey, true)),
	} {
		t.Run("TR-7/"+name, func(t *testing.T) {
			v, _ := ect.NewVerifier(ect.Config{Trust: set, Audience: "b", Clock: func() time.Time { return now }})
			if _, err := v.Verify(context.Background(), tok); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestSPIFFEBundle covers TR-7's SPIFFE bundles: use filtering (wit-svid
// keys for WITs, x509-svid CA entries as roots, other uses and RSA keys
// ignored) and an empty bundle invalidating the trust domain.
func TestSPIFFEBundle(t *testing.T) {
	now := time.Unix(1767225600, 0)
	wk := testkeys.ES256("spiffe wit", "wit-1")
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := cert(t, &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "spiffe ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &caKey.PublicKey, caKey)
	wj, _ := trust.PublicJWK(wk.Public())
	var witEntry map[string]any
	json.Unmarshal(wj, &witEntry)
	witEntry["use"] = "wit-svid"
	bundle, _ := json.Marshal(map[string]any{"spiffe_refresh_hint": 300, "keys": []any{
		witEntry,
		map[string]any{"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": []string{base64.StdEncoding.EncodeToString(ca.Raw)}},
		map[string]any{"use": "jwt-svid", "kty": "EC", "kid": "ignored"},
		map[string]any{"use": "wit-svid", "kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
	}})
	b, err := trust.ParseSPIFFEBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.WITKeys) != 1 || b.Roots == nil || b.RefreshHint != 5*time.Minute || b.Ignored != 2 {
		t.Fatalf("bundle %+v", b)
	}
	s := trust.NewSet()
	if err := s.AddSPIFFEBundle("example.com", b, func() time.Time { return now }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveWITKey(context.Background(), "example.com", "wit-1", "ES256"); err != nil {
		t.Fatalf("TR-7: wit-svid key: %v", err)
	}
	empty, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"use": "jwt-svid", "kty": "EC"}}})
	if _, err := trust.ParseSPIFFEBundle(empty); err == nil {
		t.Fatal("TR-7: a bundle without usable keys was accepted")
	}
}
