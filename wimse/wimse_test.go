package wimse_test

import (
	"bufio"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

var vectors = filepath.Join("..", "..", "shared", "vectors", "wimse")

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	if err != nil {
		t.Fatalf("the WIMSE vectors are missing (../shared/vectors): %v", err)
	}
	return strings.TrimSpace(string(b))
}

type vectorKeys struct {
	Issuer   json.RawMessage `json:"identity_server_key_june5"`
	Workload json.RawMessage `json:"workload_key"`
	Access   string          `json:"example_access_token"`
	Other    string          `json:"pr227_other_token_x-custom-token"`
}

func keys(t *testing.T) (vectorKeys, *trust.SigningKey, *trust.SigningKey) {
	t.Helper()
	var k vectorKeys
	if err := json.Unmarshal([]byte(read(t, "keys.json")), &k); err != nil {
		t.Fatal(err)
	}
	iss, err := trust.ParseSigningKey(k.Issuer, "")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := trust.ParseSigningKey(k.Workload, "")
	if err != nil {
		t.Fatal(err)
	}
	return k, iss, wl
}

func witTrust(t *testing.T, iss *trust.SigningKey) *trust.Set {
	t.Helper()
	s := trust.NewSet()
	if err := s.AddWIT("example.com", iss.Public()); err != nil {
		t.Fatal(err)
	}
	return s
}

func validator(t *testing.T, ts trust.WITResolver, at time.Time, mod func(*wimse.Config)) *wimse.Validator {
	t.Helper()
	cfg := wimse.Config{Trust: ts, Clock: func() time.Time { return at }, Audience: "https://workload.example.com/path"}
	if mod != nil {
		mod(&cfg)
	}
	v, err := wimse.NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, err error, code agentctx.Code, rule string) {
	t.Helper()
	var e *agentctx.Error
	if agentctx.CodeOf(err) != code || code != "" && (!errorsAs(err, &e) || e.Rule != rule) {
		t.Fatalf("got %v (%q), want %s under %s", err, agentctx.CodeOf(err), code, rule)
	}
}

// TestWGVectors covers TR-4 and TR-6 on the WIMSE working group's example
// WIT (ES256) and WPT (EdDSA, byte-exact issuance).
func TestWGVectors(t *testing.T) {
	ctx := context.Background()
	k, iss, wl := keys(t)
	wit := read(t, "derived-wit.txt")
	at := time.Unix(1745509916, 0)
	v := validator(t, witTrust(t, iss), at, func(c *wimse.Config) { c.Legacy = true })
	w, err := v.ValidateWIT(ctx, wit)
	if err != nil {
		t.Fatalf("TR-4: the WG WIT: %v", err)
	}
	if w.Subject != "wimse://example.com/specific-workload" || w.TrustDomain != "example.com" || w.KeyAlg != "EdDSA" {
		t.Fatalf("WIT %+v", w)
	}
	if !w.Key.Public.(interface{ Equal(crypto.PublicKey) bool }).Equal(wl.Public().Public) {
		t.Fatal("cnf.jwk is not the workload key")
	}
	wpt := read(t, "derived-wpt.txt")
	if _, err := v.ValidateWPT(ctx, wpt, w, wimse.Request{AccessToken: k.Access}); err != nil {
		t.Fatalf("TR-6: the WG WPT: %v", err)
	}
	t.Run("TR-6/WPT issued byte for byte", func(t *testing.T) {
		exp := time.Unix(1745510016, 0)
		got, err := wimse.CreateWPT(wl.Signer(), "EdDSA", wimse.WPTClaims{Audience: "https://workload.example.com/path", WIT: wit,
			AccessToken: k.Access, ID: "__bwc4ESC3acc2LTC1-_x", Lifetime: 60 * time.Second}, exp.Add(-60*time.Second))
		if err != nil || got != wpt {
			t.Fatalf("%v\n got %s\nwant %s", err, got, wpt)
		}
	})
	t.Run("TR-6/replayed WPT", func(t *testing.T) {
		_, err := v.ValidateWPT(ctx, wpt, w, wimse.Request{AccessToken: k.Access})
		wantCode(t, err, agentctx.CodeReplay, "TR-6")
	})
	t.Run("TR-6/oth of an unknown field is refused unless configured", func(t *testing.T) {
		oth := read(t, "pr227-oth/wpt-oth.txt")
		req := parseRequest(t, "pr227-oth/wpt-oth-request.txt")
		witOth := req.Header.Get("Workload-Identity-Token")
		wo, err := v.ValidateWIT(ctx, witOth)
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{"x-custom-token": req.Header.Get("X-Custom-Token")}
		_, err = v.ValidateWPT(ctx, oth, wo, wimse.Request{Fields: fields, AccessToken: k.Access})
		wantCode(t, err, agentctx.CodeWPTInvalid, "TR-6")
		known := validator(t, witTrust(t, iss), at, func(c *wimse.Config) { c.Legacy = true; c.KnownOther = []string{"x-custom-token"} })
		if _, err := known.ValidateWPT(ctx, oth, wo, wimse.Request{Fields: fields, AccessToken: k.Access}); err != nil {
			t.Fatalf("configured x-custom-token: %v", err)
		}
		if k.Other != fields["x-custom-token"] {
			t.Fatalf("the other token is %q", fields["x-custom-token"])
		}
	})
	t.Run("TR-4/expired", func(t *testing.T) {
		_, err := validator(t, witTrust(t, iss), time.Unix(1745512510+61, 0), nil).ValidateWIT(ctx, wit)
		wantCode(t, err, agentctx.CodeExpired, "TR-4")
	})
	t.Run("TR-4/another trust domain's key", func(t *testing.T) {
		s := trust.NewSet()
		s.AddWIT("other.example", iss.Public())
		_, err := validator(t, s, at, nil).ValidateWIT(ctx, wit)
		wantCode(t, err, agentctx.CodeUnknownKey, "TR-4")
	})
}

func parseRequest(t *testing.T, name string) *http.Request {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(read(t, name) + "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestWITRules covers each step of TR-4 with tokens built for it.
func TestWITRules(t *testing.T) {
	ctx := context.Background()
	issuer := testkeys.ES256("wimse issuer", "td-1")
	workload := testkeys.EdDSA("wimse workload", "wl-1")
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	now := time.Unix(1767225600, 0)
	v := validator(t, ts, now, nil)
	good := wimse.WITClaims{Subject: "spiffe://example.com/agent/a", Key: workload.Public()}
	tok, err := wimse.IssueWIT(issuer, good, now)
	if err != nil {
		t.Fatal(err)
	}
	w, err := v.ValidateWIT(ctx, tok)
	if err != nil || w.Subject != good.Subject || w.KeyAlg != "EdDSA" {
		t.Fatalf("%v %+v", err, w)
	}
	sign := func(hdr, payload map[string]any) string { return testkeys.SignJSON(t, issuer, hdr, payload) }
	hdr := func() map[string]any { return map[string]any{"alg": "ES256", "kid": "td-1", "typ": "wit+jwt"} }
	var cnf map[string]any
	jwk, _ := trust.PublicJWK(workload.Public())
	json.Unmarshal(jwk, &cnf)
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"sub": good.Subject, "exp": now.Unix() + 600, "iat": now.Unix(), "jti": "j", "cnf": map[string]any{"jwk": cnf}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	for name, c := range map[string]struct {
		tok  string
		code agentctx.Code
	}{
		"sub with a port":    {sign(hdr(), claims(func(c map[string]any) { c["sub"] = "spiffe://example.com:8443/a" })), agentctx.CodeWITInvalid},
		"sub with a query":   {sign(hdr(), claims(func(c map[string]any) { c["sub"] = "spiffe://example.com/a?x=1" })), agentctx.CodeWITInvalid},
		"sub with userinfo":  {sign(hdr(), claims(func(c map[string]any) { c["sub"] = "spiffe://u@example.com/a" })), agentctx.CodeWITInvalid},
		"sub without domain": {sign(hdr(), claims(func(c map[string]any) { c["sub"] = "urn:x:y" })), agentctx.CodeWITInvalid},
		"typ JWT":            {sign(map[string]any{"alg": "ES256", "kid": "td-1", "typ": "JWT"}, claims(nil)), agentctx.CodeWITInvalid},
		"no exp":             {sign(hdr(), claims(func(c map[string]any) { delete(c, "exp") })), agentctx.CodeWITInvalid},
		"lifetime over 24 h": {sign(hdr(), claims(func(c map[string]any) { c["exp"] = now.Unix() + 90000 })), agentctx.CodeWITInvalid},
		"no cnf":             {sign(hdr(), claims(func(c map[string]any) { delete(c, "cnf") })), agentctx.CodeWITInvalid},
		"cnf without alg": {sign(hdr(), claims(func(c map[string]any) {
			c["cnf"] = map[string]any{"jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": cnf["x"]}}
		})), agentctx.CodeWITInvalid},
		"cnf with private key": {sign(hdr(), claims(func(c map[string]any) {
			m := map[string]any{"d": "AAAA"}
			maps(m, cnf)
			c["cnf"] = map[string]any{"jwk": m}
		})), agentctx.CodeWITInvalid},
		"unknown kid":       {sign(map[string]any{"alg": "ES256", "kid": "nope", "typ": "wit+jwt"}, claims(nil)), agentctx.CodeUnknownKey},
		"no kid, one key":   {sign(map[string]any{"alg": "ES256", "typ": "wit+jwt"}, claims(nil)), ""},
		"bad signature":     {tok[:len(tok)-4] + "AAAA", agentctx.CodeBadSignature},
		"nbf in the future": {sign(hdr(), claims(func(c map[string]any) { c["nbf"] = now.Unix() + 300 })), agentctx.CodeWITInvalid},
	} {
		t.Run("TR-4/"+name, func(t *testing.T) {
			_, err := v.ValidateWIT(ctx, c.tok)
			if c.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, c.code, "TR-4")
		})
	}
}

func maps(dst, src map[string]any) {
	for k, v := range src {
		dst[k] = v
	}
}

// TestWPTRules covers the receiver order of TR-6.
func TestWPTRules(t *testing.T) {
	ctx := context.Background()
	issuer := testkeys.ES256("wimse issuer", "td-1")
	workload := testkeys.EdDSA("wimse workload", "wl-1")
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	now := time.Unix(1767225600, 0)
	witTok, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: "spiffe://example.com/agent/a", Key: workload.Public()}, now)
	const aud = "https://b.example.com/api"
	mk := func(mod func(*wimse.WPTClaims), alg string) string {
		c := wimse.WPTClaims{Audience: aud, WIT: witTok, Other: map[string]string{"execution-context": "ect-value"}}
		if mod != nil {
			mod(&c)
		}
		tok, err := wimse.CreateWPT(workload.Signer(), alg, c, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	fields := map[string]string{"execution-context": "ect-value"}
	for name, c := range map[string]struct {
		tok    string
		fields map[string]string
		code   agentctx.Code
	}{
		"valid":                         {mk(nil, "EdDSA"), fields, ""},
		"alg Ed25519 is not as written": {mk(nil, "Ed25519"), fields, agentctx.CodeWPTInvalid},
		"aud is Host":                   {mk(func(c *wimse.WPTClaims) { c.Audience = "b.example.com" }, "EdDSA"), fields, agentctx.CodeAudienceMismatch},
		"another WIT":                   {mk(func(c *wimse.WPTClaims) { c.WIT = witTok + "x" }, "EdDSA"), fields, agentctx.CodeIdentityMismatch},
		"field sent, not covered":       {mk(func(c *wimse.WPTClaims) { c.Other = nil }, "EdDSA"), fields, agentctx.CodeWPTInvalid},
		"field changed":                 {mk(nil, "EdDSA"), map[string]string{"execution-context": "other"}, agentctx.CodeWPTInvalid},
		"txn-token sent without tth":    {mk(nil, "EdDSA"), map[string]string{"execution-context": "ect-value", "txn-token": "t"}, agentctx.CodeWPTInvalid},
		"txn-token with tth":            {mk(func(c *wimse.WPTClaims) { c.TxnToken = "t" }, "EdDSA"), map[string]string{"execution-context": "ect-value", "txn-token": "t"}, ""},
		"signed by another key":         {must(wimse.CreateWPT(testkeys.EdDSA("other", "o").Signer(), "EdDSA", wimse.WPTClaims{Audience: aud, WIT: witTok}, now)), nil, agentctx.CodeBadSignature},
	} {
		t.Run("TR-6/"+name, func(t *testing.T) {
			v := validator(t, ts, now, func(cf *wimse.Config) { cf.Audience = aud })
			w, err := v.ValidateWIT(ctx, witTok)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.ValidateWPT(ctx, c.tok, w, wimse.Request{Fields: c.fields})
			if c.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, c.code, "TR-6")
		})
	}
	t.Run("TR-6/expired and too far ahead", func(t *testing.T) {
		tok := mk(nil, "EdDSA")
		v := validator(t, ts, now.Add(3*time.Minute), func(cf *wimse.Config) { cf.Audience = aud })
		w, _ := v.ValidateWIT(ctx, witTok)
		_, err := v.ValidateWPT(ctx, tok, w, wimse.Request{Fields: fields})
		wantCode(t, err, agentctx.CodeExpired, "TR-6")
		if _, err := wimse.CreateWPT(workload.Signer(), "EdDSA", wimse.WPTClaims{Audience: aud, WIT: witTok, Lifetime: time.Hour}, now); err == nil {
			t.Fatal("a WPT of an hour was created")
		}
	})
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func errorsAs(err error, target **agentctx.Error) bool { return errors.As(err, target) }
