package httpsig_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/httpsig"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/replay"
	"github.com/agentctx/agentctx/trust"
)

var vec = filepath.Join("..", "..", "shared", "vectors")

func file(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vec, name))
	if err != nil {
		t.Fatalf("the interop vectors are missing (../shared/vectors): %v", err)
	}
	return b
}

func request(t *testing.T, name string) (*http.Request, []byte) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(file(t, name))))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	return r, body
}

func response(t *testing.T, name string, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(file(t, name))), req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	return r, body
}

func publicKey(t *testing.T, name string) crypto.PublicKey {
	t.Helper()
	ks, err := trust.ParseKeys(file(t, name))
	if err != nil || len(ks) != 1 {
		t.Fatalf("%s: %v", name, err)
	}
	return ks[0].Public
}

func signingKey(t *testing.T, name string) *trust.SigningKey {
	t.Helper()
	k, err := trust.ParseSigningKey(file(t, name), "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func one(t *testing.T, m httpsig.Message, label string) *httpsig.Signature {
	t.Helper()
	sigs, err := httpsig.Signatures(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sigs {
		if s.Label == label {
			return s
		}
	}
	t.Fatalf("no signature %q", label)
	return nil
}

// TestRFC9421 covers TR-6's RFC 9421 vectors: B.2.6 (Ed25519, the base and
// the signature byte for byte) and B.2.4 (ECDSA P-256, the base and
// verification).
func TestRFC9421(t *testing.T) {
	t.Run("TR-6/B.2.6 Ed25519", func(t *testing.T) {
		r, _ := request(t, "rfc9421/b26_request_signed.txt")
		m := httpsig.Message{Request: r}
		s := one(t, m, "sig-b26")
		base, err := httpsig.Base(m, s.Components, s.Params)
		if err != nil || string(base) != string(file(t, "rfc9421/b26_request_sigbase.txt")) {
			t.Fatalf("%v\n%s", err, base)
		}
		if err := httpsig.Verify(m, s, httpsig.AlgEd25519, publicKey(t, "rfc9421/test-key-ed25519.pub")); err != nil {
			t.Fatal(err)
		}
		// Signed again from the unsigned request: the same bytes.
		plain, _ := request(t, "rfc9421/rfc-test-request.txt")
		key := signingKey(t, "rfc9421/test-key-ed25519.key")
		if err := httpsig.Sign(httpsig.Message{Request: plain}, "sig-b26", s.Components, s.Params, httpsig.AlgEd25519, key.Signer()); err != nil {
			t.Fatal(err)
		}
		if plain.Header.Get("Signature") != r.Header.Get("Signature") || plain.Header.Get("Signature-Input") != r.Header.Get("Signature-Input") {
			t.Fatalf("signed:\n%s\n%s\nwant:\n%s\n%s", plain.Header.Get("Signature-Input"), plain.Header.Get("Signature"), r.Header.Get("Signature-Input"), r.Header.Get("Signature"))
		}
	})
	t.Run("TR-6/B.2.4 ECDSA P-256", func(t *testing.T) {
		resp, _ := response(t, "rfc9421/b24_response_signed.txt", nil)
		m := httpsig.Message{Response: resp}
		s := one(t, m, "sig-b24")
		base, err := httpsig.Base(m, s.Components, s.Params)
		if err != nil || string(base) != string(file(t, "rfc9421/b24_response_sigbase.txt")) {
			t.Fatalf("%v\n%s", err, base)
		}
		pub := publicKey(t, "rfc9421/test-key-ecc-p256.pub")
		if err := httpsig.Verify(m, s, httpsig.AlgECDSAP256, pub); err != nil {
			t.Fatal(err)
		}
		// Our own ECDSA signature of the same base verifies too.
		plain, _ := response(t, "rfc9421/rfc-test-response.txt", nil)
		key := signingKey(t, "rfc9421/test-key-ecc-p256.key")
		if err := httpsig.Sign(httpsig.Message{Response: plain}, "mine", s.Components, s.Params, httpsig.AlgECDSAP256, key.Signer()); err != nil {
			t.Fatal(err)
		}
		if err := httpsig.Verify(httpsig.Message{Response: plain}, one(t, httpsig.Message{Response: plain}, "mine"), httpsig.AlgECDSAP256, pub); err != nil {
			t.Fatal(err)
		}
	})
}

func jwkKey(t *testing.T, name string) *trust.SigningKey {
	t.Helper()
	k, err := trust.ParseSigningKey(file(t, name), "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestWIMSEVectors covers the WG's signed request and response (legacy
// @request-target): the bases byte for byte, verification under the
// profile, and byte-exact Ed25519 signing.
func TestWIMSEVectors(t *testing.T) {
	req, _ := request(t, "wimse/sigs-request.txt")
	m := httpsig.Message{Request: req}
	s, err := httpsig.Find(m)
	if err != nil || s == nil || s.Label != "wimse" {
		t.Fatalf("%v %+v", err, s)
	}
	base, err := httpsig.Base(m, s.Components, s.Params)
	if err != nil || string(base) != string(file(t, "wimse/derived-sigs-request.sigbase.txt")) {
		t.Fatalf("%v\n%s", err, base)
	}
	caller := jwkKey(t, "wimse/sigs-svca-jwk.txt")
	at := time.Unix(1785155797+10, 0)
	pol := httpsig.Policy{Audience: "https://svcb.example.com/gimme-ice-cream", Clock: func() time.Time { return at }, Skew: time.Minute, Legacy: true, Nonces: replay.New(1024)}
	v, err := httpsig.VerifyWIMSE(m, s, "EdDSA", caller.Public().Public, nil, pol)
	if err != nil || v.Nonce != "abcd1111" || !v.SignResponse {
		t.Fatalf("TR-6: the WG request: %v %+v", err, v)
	}
	t.Run("TR-6/the nonce is refused the second time", func(t *testing.T) {
		_, err := httpsig.VerifyWIMSE(m, s, "EdDSA", caller.Public().Public, nil, pol)
		wantCode(t, err, agentctx.CodeReplay)
	})
	t.Run("TR-6/@request-target only in legacy mode", func(t *testing.T) {
		p := pol
		p.Legacy, p.Nonces = false, nil
		_, err := httpsig.VerifyWIMSE(m, s, "EdDSA", caller.Public().Public, nil, p)
		wantCode(t, err, agentctx.CodeHTTPSigInvalid)
	})
	t.Run("TR-6/signed byte for byte", func(t *testing.T) {
		again, _ := request(t, "wimse/sigs-request.txt")
		again.Header.Del("Signature")
		again.Header.Del("Signature-Input")
		if err := httpsig.Sign(httpsig.Message{Request: again}, "wimse", s.Components, s.Params, httpsig.AlgEd25519, caller.Signer()); err != nil {
			t.Fatal(err)
		}
		if again.Header.Get("Signature") != req.Header.Get("Signature") {
			t.Fatalf("got %s want %s", again.Header.Get("Signature"), req.Header.Get("Signature"))
		}
	})
	t.Run("TR-6/the WG response", func(t *testing.T) {
		resp, body := response(t, "wimse/sigs-response.txt", req)
		rm := httpsig.Message{Request: req, Response: resp}
		rs, err := httpsig.Find(rm)
		if err != nil || rs == nil {
			t.Fatal(err)
		}
		base, err := httpsig.Base(rm, rs.Components, rs.Params)
		if err != nil || string(base) != string(file(t, "wimse/derived-sigs-response.sigbase.txt")) {
			t.Fatalf("%v\n%s", err, base)
		}
		callee := jwkKey(t, "wimse/sigs-svcb-jwk.txt")
		rp := httpsig.Policy{Clock: func() time.Time { return at }, Skew: time.Minute, Legacy: true, ReqNonce: "abcd1111"}
		if _, err := httpsig.VerifyWIMSE(rm, rs, "EdDSA", callee.Public().Public, body, rp); err != nil {
			t.Fatal(err)
		}
		rp.ReqNonce = "other"
		_, err = httpsig.VerifyWIMSE(rm, rs, "EdDSA", callee.Public().Public, body, rp)
		wantCode(t, err, agentctx.CodeHTTPSigInvalid)
		rp.ReqNonce = "abcd1111"
		_, err = httpsig.VerifyWIMSE(rm, rs, "EdDSA", callee.Public().Public, append(body, 'x'), rp)
		wantCode(t, err, agentctx.CodeHTTPSigInvalid)
	})
}

func wantCode(t *testing.T, err error, code agentctx.Code) {
	t.Helper()
	var e *agentctx.Error
	if agentctx.CodeOf(err) != code || !errors.As(err, &e) || e.Rule != "TR-6" {
		t.Fatalf("got %v (%q), want %s under TR-6", err, agentctx.CodeOf(err), code)
	}
}

// TestWIMSEProfile covers TR-6's rules on signatures this package makes.
func TestWIMSEProfile(t *testing.T) {
	key := testkeys.ES256("httpsig", "k")
	now := time.Unix(1767225600, 0)
	const aud = "https://b.example.com/api"
	mk := func(mod func(r *http.Request)) *http.Request {
		r, _ := http.NewRequest("POST", "http://b.example.com/api?x=1", strings.NewReader(`{"a":1}`))
		r.Header.Set("Content-Type", "application/json")
		httpsig.SetContentDigest(r.Header, []byte(`{"a":1}`))
		r.Header.Set("Execution-Context", "ect")
		r.Header.Set("Workload-Identity-Token", "wit")
		if mod != nil {
			mod(r)
		}
		if _, err := httpsig.SignRequest(r, aud, true, httpsig.AlgECDSAP256, key.Signer(), now, time.Minute); err != nil {
			t.Fatal(err)
		}
		return r
	}
	pol := func() httpsig.Policy {
		return httpsig.Policy{Audience: aud, Clock: func() time.Time { return now }, Skew: time.Minute, Nonces: replay.New(64)}
	}
	check := func(r *http.Request, body string, p httpsig.Policy) error {
		m := httpsig.Message{Request: r}
		s, err := httpsig.Find(m)
		if err != nil {
			return err
		}
		_, err = httpsig.VerifyWIMSE(m, s, "ES256", key.Public().Public, []byte(body), p)
		return err
	}
	if err := check(mk(nil), `{"a":1}`, pol()); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		r    *http.Request
		body string
		p    func(*httpsig.Policy)
		code agentctx.Code
	}{
		"body not matching its digest": {mk(nil), `{"a":2}`, nil, agentctx.CodeHTTPSigInvalid},
		"wimse-aud is another URI":     {mk(nil), `{"a":1}`, func(p *httpsig.Policy) { p.Audience = "https://b.example.com/other" }, agentctx.CodeAudienceMismatch},
		"expired":                      {mk(nil), `{"a":1}`, func(p *httpsig.Policy) { c := now.Add(3 * time.Minute); p.Clock = func() time.Time { return c } }, agentctx.CodeExpired},
		"a field added after signing":  {func() *http.Request { r := mk(nil); r.Header.Set("Act-Mandate", "m"); return r }(), `{"a":1}`, nil, agentctx.CodeHTTPSigInvalid},
		"a covered field changed":      {func() *http.Request { r := mk(nil); r.Header.Set("Execution-Context", "other"); return r }(), `{"a":1}`, nil, agentctx.CodeBadSignature},
		"a second WIMSE signature": {func() *http.Request {
			r := mk(nil)
			s, _ := httpsig.Find(httpsig.Message{Request: r})
			httpsig.Sign(httpsig.Message{Request: r}, "another-label", s.Components, s.Params, httpsig.AlgECDSAP256, key.Signer())
			return r
		}(), `{"a":1}`, nil, agentctx.CodeHTTPSigInvalid},
	}
	for name, c := range cases {
		t.Run("TR-6/"+name, func(t *testing.T) {
			p := pol()
			if c.p != nil {
				c.p(&p)
			}
			err := check(c.r, c.body, p)
			if agentctx.CodeOf(err) != c.code {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
	t.Run("TR-6/keyid is refused", func(t *testing.T) {
		r := mk(nil)
		m := httpsig.Message{Request: r}
		s, _ := httpsig.Find(m)
		s.Params.Add("keyid", "k")
		_, err := httpsig.VerifyWIMSE(m, s, "ES256", key.Public().Public, []byte(`{"a":1}`), pol())
		wantCode(t, err, agentctx.CodeHTTPSigInvalid)
	})
	t.Run("TR-6/response signed and bound to the request nonce", func(t *testing.T) {
		r := mk(nil)
		nonce := ""
		if s, _ := httpsig.Find(httpsig.Message{Request: r}); s != nil {
			v, _ := s.Params.Get("nonce")
			nonce = v.(string)
		}
		srv := testkeys.EdDSA("httpsig server", "s")
		resp := &http.Response{StatusCode: 200, Header: http.Header{}}
		resp.Header.Set("Content-Type", "text/plain")
		httpsig.SetContentDigest(resp.Header, []byte("ok"))
		if err := httpsig.SignResponse(resp, r, nonce, httpsig.AlgEd25519, srv.Signer(), now); err != nil {
			t.Fatal(err)
		}
		rm := httpsig.Message{Request: r, Response: resp}
		s, _ := httpsig.Find(rm)
		p := httpsig.Policy{Clock: func() time.Time { return now }, Skew: time.Minute, ReqNonce: nonce}
		if _, err := httpsig.VerifyWIMSE(rm, s, "EdDSA", srv.Public().Public.(ed25519.PublicKey), []byte("ok"), p); err != nil {
			t.Fatal(err)
		}
	})
}
