package trust_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

var (
	ed = testkeys.EdDSA("trust-test", "k-ed")
	ec = testkeys.ES256("trust-test", "k-ec")
)

func jwk(t *testing.T, k trust.Key) string {
	t.Helper()
	b, err := trust.PublicJWK(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTrustFileBinding covers TR-7 and TR-7a: keys bound to an exact issuer or
// a prefix; a key used for an issuer its entry does not cover is unknown_key.
func TestTrustFileBinding(t *testing.T) {
	file := `{"issuers":[
		{"id":"spiffe://example.com/agent/a","keys":[` + jwk(t, ed.Public()) + `]},
		{"prefix":"spiffe://partner.example/","keys":[` + jwk(t, ec.Public()) + `]}]}`
	s, err := trust.ParseFile([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		iss, kid, alg string
		code          agentctx.Code
	}{
		{"spiffe://example.com/agent/a", "k-ed", "EdDSA", ""},
		{"spiffe://example.com/agent/ab", "k-ed", "EdDSA", agentctx.CodeUnknownKey}, // exact, not a prefix
		{"spiffe://example.com/agent/b", "k-ed", "EdDSA", agentctx.CodeUnknownKey},
		{"spiffe://partner.example/agent/x", "k-ec", "ES256", ""},
		{"spiffe://partner.example.evil/x", "k-ec", "ES256", agentctx.CodeUnknownKey},
		{"spiffe://partner.example/agent/x", "k-ed", "EdDSA", agentctx.CodeUnknownKey},
		{"spiffe://example.com/agent/a", "k-ed", "ES256", agentctx.CodeUnknownKey}, // key algorithm must match alg
		{"spiffe://example.com/agent/a", "nope", "EdDSA", agentctx.CodeUnknownKey},
	}
	for _, c := range cases {
		_, err := s.ResolveKey(ctx, c.iss, c.kid, c.alg)
		if got := agentctx.CodeOf(err); got != c.code {
			t.Errorf("%s %s %s: %v, want %q", c.iss, c.kid, c.alg, err, c.code)
		}
	}
}

func TestTrustFileRefusals(t *testing.T) {
	pub := jwk(t, ed.Public())
	priv, _ := ed.MarshalJWK()
	for name, file := range map[string]string{
		"not JSON":          `{`,
		"no issuers":        `{}`,
		"plain JWKS":        `{"keys":[` + pub + `]}`,
		"prefix without /":  `{"issuers":[{"prefix":"spiffe://example.com","keys":[` + pub + `]}]}`,
		"id and prefix":     `{"issuers":[{"id":"a","prefix":"b/","keys":[` + pub + `]}]}`,
		"neither":           `{"issuers":[{"keys":[` + pub + `]}]}`,
		"no keys":           `{"issuers":[{"id":"a","keys":[]}]}`,
		"private key":       `{"issuers":[{"id":"a","keys":[` + string(priv) + `]}]}`,
		"jwks_url (later)":  `{"issuers":[{"id":"a","jwks_url":"https://x/jwks"}]}`,
		"alg mismatch":      `{"issuers":[{"id":"a","keys":[` + strings.Replace(pub, `"EdDSA"`, `"ES256"`, 1) + `]}]}`,
		"RSA key":           `{"issuers":[{"id":"a","keys":[{"kty":"RSA","n":"sXch","e":"AQAB","kid":"r"}]}]}`,
		"symmetric (oct)":   `{"issuers":[{"id":"a","keys":[{"kty":"oct","k":"AAAA","kid":"h"}]}]}`,
		"EC P-384":          `{"issuers":[{"id":"a","keys":[{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"}]}]}`,
		"bad key in second": `{"issuers":[{"id":"a","keys":[` + pub + `,{"kty":"OKP"}]}]}`,
	} {
		if _, err := trust.ParseFile([]byte(file)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := trust.ParseFile([]byte(`{"keys":[` + pub + `]}`)); !errors.Is(err, trust.ErrPlainJWKS) {
		t.Errorf("plain JWKS: %v, want ErrPlainJWKS", err)
	}
}

// TestPlainJWKSAnyIssuer: a plain JWKS is trusted for any issuer only through
// the explicit AnyIssuer binding (TR-7a).
func TestPlainJWKSAnyIssuer(t *testing.T) {
	keys, err := trust.ParseJWKS([]byte(`{"keys":[` + jwk(t, ed.Public()) + `,` + jwk(t, ec.Public()) + `]}`))
	if err != nil || len(keys) != 2 {
		t.Fatal(keys, err)
	}
	s := trust.NewSet()
	if err := s.Add(trust.AnyIssuer, keys...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveKey(context.Background(), "did:web:anyone", "k-ec", "ES256"); err != nil {
		t.Fatal(err)
	}
}

func TestKidDefaultsToThumbprint(t *testing.T) {
	pub := strings.Replace(jwk(t, ed.Public()), `"kid":"k-ed",`, "", 1)
	k, err := trust.ParseJWK([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := trust.Thumbprint(ed.Public().Public)
	if k.KeyID != tp || len(tp) != 43 {
		t.Fatalf("kid %q, thumbprint %q", k.KeyID, tp)
	}
}

func TestPEMPublicKeys(t *testing.T) {
	var buf []byte
	for _, k := range []trust.Key{ed.Public(), ec.Public()} {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	keys, err := trust.ParsePEM(buf, "")
	if err != nil || len(keys) != 2 || keys[0].Alg != "EdDSA" || keys[1].Alg != "ES256" {
		t.Fatalf("%v %v", keys, err)
	}
	if _, err := trust.ParsePEM(buf, "one-kid"); err == nil {
		t.Fatal("one kid for two keys accepted")
	}
	if _, err := trust.ParsePEM([]byte("nothing"), ""); err == nil {
		t.Fatal("no PEM accepted")
	}
}

// TestDIDKey covers did:key (Ed25519, P-256) as a trust source (TR-7).
func TestDIDKey(t *testing.T) {
	ctx := context.Background()
	for _, k := range []*trust.SigningKey{ed, ec} {
		did, err := trust.FormatDIDKey(k.Public().Public)
		if err != nil {
			t.Fatal(err)
		}
		prefix := map[string]string{"EdDSA": "did:key:z6Mk", "ES256": "did:key:zDn"}[k.Alg()]
		if !strings.HasPrefix(did, prefix) {
			t.Fatalf("%s: %s does not start with %s", k.Alg(), did, prefix)
		}
		frag := did[len("did:key:"):]
		for _, kid := range []string{did + "#" + frag, "#" + frag, frag, did} {
			pub, err := trust.DIDKey.ResolveKey(ctx, did, kid, k.Alg())
			if err != nil {
				t.Fatalf("%s kid %s: %v", k.Alg(), kid, err)
			}
			switch p := pub.(type) {
			case ed25519.PublicKey:
				if !p.Equal(k.Public().Public) {
					t.Fatal("wrong Ed25519 key")
				}
			case *ecdsa.PublicKey:
				if !p.Equal(k.Public().Public) {
					t.Fatal("wrong P-256 key")
				}
			}
		}
		if _, err := trust.DIDKey.ResolveKey(ctx, did, "other", k.Alg()); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
			t.Fatalf("foreign kid: %v", err)
		}
	}
	// A known W3C did:key test value (Ed25519).
	const w3c = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	if _, err := trust.ParseDIDKey(w3c); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"did:web:example.com", "did:key:abc", "did:key:z0OIl", "did:key:z6Mk"} {
		if _, err := trust.DIDKey.ResolveKey(ctx, bad, bad, "EdDSA"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestMulti(t *testing.T) {
	s := trust.NewSet()
	if err := s.Add(trust.Binding{ID: "a"}, ed.Public()); err != nil {
		t.Fatal(err)
	}
	m := trust.Multi(s, trust.DIDKey)
	ctx := context.Background()
	if _, err := m.ResolveKey(ctx, "a", "k-ed", "EdDSA"); err != nil {
		t.Fatal(err)
	}
	did, _ := trust.FormatDIDKey(ec.Public().Public)
	if _, err := m.ResolveKey(ctx, did, did, "ES256"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ResolveKey(ctx, "b", "k-ed", "EdDSA"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatal(err)
	}
}

// TestSigningKeyFiles covers TR-8: private keys from JWK and PEM files, a
// warning for loose permissions, and no key material in errors or String.
func TestSigningKeyFiles(t *testing.T) {
	dir := t.TempDir()
	privJWK, _ := ec.MarshalJWK()
	p := filepath.Join(dir, "k.jwk")
	if err := os.WriteFile(p, privJWK, 0o600); err != nil {
		t.Fatal(err)
	}
	var warned []string
	warn := func(s string) { warned = append(warned, s) }
	k, err := trust.LoadSigningKey(p, warn)
	if err != nil || k.KeyID() != "k-ec" || k.Alg() != "ES256" || len(warned) != 0 {
		t.Fatalf("%v %v %v", k, err, warned)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.LoadSigningKey(p, warn); err != nil || len(warned) != 1 {
		t.Fatalf("loose permissions: %v, warnings %v", err, warned)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ed.Signer())
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := trust.ParseSigningKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "pem-kid")
	if err != nil || pemKey.Alg() != "EdDSA" || pemKey.KeyID() != "pem-kid" {
		t.Fatalf("%v %v", pemKey, err)
	}
	secret := string(privJWK)
	d := secret[strings.Index(secret, `"d":"`)+5:]
	d = d[:strings.IndexByte(d, '"')]
	bad := strings.Replace(secret, `"crv":"P-256"`, `"crv":"P-999"`, 1)
	_, err = trust.ParseSigningKey([]byte(bad), "")
	if err == nil || strings.Contains(err.Error(), d) {
		t.Fatalf("error leaks key material or accepts a bad key: %v", err)
	}
	if strings.Contains(k.String(), d) || strings.Contains(k.GoString(), d) {
		t.Fatal("String leaks key material")
	}
	pubOnly := jwk(t, ec.Public())
	if _, err := trust.ParseSigningKey([]byte(pubOnly), ""); err == nil {
		t.Fatal("public JWK accepted as a signing key")
	}
}

// TestMismatchedKeyPairRefused: a private JWK whose public part belongs to
// another key is refused at load (every token it signed would fail).
func TestMismatchedKeyPairRefused(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		a, _ := trust.GenerateKey(alg, "a")
		b, _ := trust.GenerateKey(alg, "b")
		ja, _ := a.MarshalJWK()
		jb, _ := b.MarshalJWK()
		var ma, mb map[string]any
		json.Unmarshal(ja, &ma)
		json.Unmarshal(jb, &mb)
		ma["x"] = mb["x"]
		if alg == "ES256" {
			ma["y"] = mb["y"]
		}
		mixed, _ := json.Marshal(ma)
		if _, err := trust.ParseSigningKey(mixed, ""); err == nil || alg == "ES256" && !strings.Contains(err.Error(), "does not match") {
			t.Errorf("%s: mismatched JWK accepted: %v", alg, err)
		}
		if _, err := trust.ParseSigningKey(ja, ""); err != nil {
			t.Errorf("%s: own JWK refused: %v", alg, err)
		}
	}
}
