package jws

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"strings"
	"testing"

	"github.com/agentctx/agentctx"
)

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := DecodeSegment(s)
	if err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return b
}

// RFC 7515 Appendix A.3: ECDSA P-256 SHA-256.
func TestRFC7515A3ES256(t *testing.T) {
	const (
		x     = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
		y     = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
		input = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
		sig   = "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
	)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, mustB64(t, x)...), mustB64(t, y)...))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ES256, pub, []byte(input), mustB64(t, sig)); err != nil {
		t.Fatalf("RFC 7515 A.3 example does not verify: %v", err)
	}
	// One changed byte of the signing input must fail.
	if err := Verify(ES256, pub, []byte(input[:len(input)-1]+"R"), mustB64(t, sig)); agentctx.CodeOf(err) != agentctx.CodeBadSignature {
		t.Fatalf("tampered input: got %v, want bad_signature", err)
	}
}

// RFC 8037 Appendix A.4: Ed25519 signing; A.5 verification.
func TestRFC8037A4Ed25519(t *testing.T) {
	const (
		d     = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
		x     = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
		input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
		sig   = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
	)
	priv := ed25519.NewKeyFromSeed(mustB64(t, d))
	if got := EncodeSegment(priv.Public().(ed25519.PublicKey)); got != x {
		t.Fatalf("public key %s, want %s", got, x)
	}
	got, err := Sign(EdDSA, priv, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if EncodeSegment(got) != sig {
		t.Fatalf("signature %s, want %s", EncodeSegment(got), sig)
	}
	if err := Verify(EdDSA, ed25519.PublicKey(mustB64(t, x)), []byte(input), mustB64(t, sig)); err != nil {
		t.Fatalf("RFC 8037 A.5 verification: %v", err)
	}
}

func TestParseEnvelope(t *testing.T) {
	hdr := EncodeSegment([]byte(`{"alg":"EdDSA","kid":"k","typ":"exec+jwt"}`))
	pl := EncodeSegment([]byte(`{"iss":"a"}`))
	sig := EncodeSegment(make([]byte, 64))
	cases := []struct {
		name, token string
		code        agentctx.Code
	}{
		{"ok", hdr + "." + pl + "." + sig, ""},
		{"too large", strings.Repeat("a", DefaultMaxLength+1), agentctx.CodeTooLarge},
		{"two segments", hdr + "." + pl, agentctx.CodeMalformed},
		{"five segments (JWE)", hdr + "." + pl + "." + sig + ".a.b", agentctx.CodeMalformed},
		{"empty signature parses (refused by the alg or signature check)", hdr + "." + pl + ".", ""},
		{"padding", hdr + "=." + pl + "." + sig, agentctx.CodeMalformed},
		{"standard alphabet", hdr + "." + pl + "+." + sig, agentctx.CodeMalformed},
		{"newline", hdr + "\n." + pl + "." + sig, agentctx.CodeMalformed},
		{"non-canonical trailing bits", hdr + "." + EncodeSegment([]byte(`{"iss":"a"}`))[:14] + "R." + sig, agentctx.CodeMalformed},
		{"header not an object", EncodeSegment([]byte(`["alg"]`)) + "." + pl + "." + sig, agentctx.CodeMalformed},
		{"payload not an object", hdr + "." + EncodeSegment([]byte(`"x"`)) + "." + sig, agentctx.CodeMalformed},
		{"duplicate header member", EncodeSegment([]byte(`{"alg":"EdDSA","alg":"none"}`)) + "." + pl + "." + sig, agentctx.CodeMalformed},
		{"duplicate payload member", hdr + "." + EncodeSegment([]byte(`{"iss":"a","iss":"b"}`)) + "." + sig, agentctx.CodeMalformed},
		{"duplicate nested member", hdr + "." + EncodeSegment([]byte(`{"x":{"a":1,"a":2}}`)) + "." + sig, agentctx.CodeMalformed},
		{"escaped duplicate", hdr + "." + EncodeSegment([]byte(`{"iss":"a","\u0069ss":"b"}`)) + "." + sig, agentctx.CodeMalformed},
		{"trailing data", hdr + "." + EncodeSegment([]byte(`{"iss":"a"} x`)) + "." + sig, agentctx.CodeMalformed},
		{"invalid UTF-8", hdr + "." + EncodeSegment([]byte("{\"iss\":\"\xff\"}")) + "." + sig, agentctx.CodeMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.token, 0)
			if got := agentctx.CodeOf(err); got != c.code {
				t.Fatalf("got %q (%v), want %q", got, err, c.code)
			}
		})
	}
}

func TestCheckAlg(t *testing.T) {
	pl := EncodeSegment([]byte(`{}`))
	sig := EncodeSegment(make([]byte, 64))
	cases := []struct {
		header string
		code   agentctx.Code
		alg    string
	}{
		{`{"alg":"ES256"}`, "", ES256},
		{`{"alg":"EdDSA"}`, "", EdDSA},
		{`{"alg":"Ed25519"}`, "", EdDSA}, // RFC 9864 synonym [decision]
		{`{"alg":"none"}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":"HS256"}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":"RS256"}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":"PS256"}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":"ES384"}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":"es256"}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":1}`, agentctx.CodeAlgNotAllowed, ""},
		{`{}`, agentctx.CodeAlgNotAllowed, ""},
		{`{"alg":"ES256","crit":["exp"]}`, agentctx.CodeUnsupportedCrit, ""},
	}
	for _, c := range cases {
		tok, err := Parse(EncodeSegment([]byte(c.header))+"."+pl+"."+sig, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = tok.CheckAlg()
		if got := agentctx.CodeOf(err); got != c.code {
			t.Errorf("%s: got %q (%v), want %q", c.header, got, err, c.code)
		}
		if c.code == "" && tok.Header.Alg != c.alg {
			t.Errorf("%s: normalized alg %q, want %q", c.header, tok.Header.Alg, c.alg)
		}
	}
}

func TestVerifyKeyMustMatchAlg(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(nil)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), randReader{})
	sig := make([]byte, 64)
	if err := Verify(EdDSA, &ecPriv.PublicKey, []byte("a.b"), sig); !errors.Is(err, ErrKeyAlgMismatch) {
		t.Errorf("P-256 key under EdDSA: %v", err)
	}
	if err := Verify(ES256, edPriv.Public(), []byte("a.b"), sig); !errors.Is(err, ErrKeyAlgMismatch) {
		t.Errorf("Ed25519 key under ES256: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), randReader{})
	if err := Verify(ES256, &p384.PublicKey, []byte("a.b"), sig); !errors.Is(err, ErrKeyAlgMismatch) {
		t.Errorf("P-384 key under ES256: %v", err)
	}
}

func TestES256RejectsDER(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), randReader{})
	tok, err := Encode(ES256, priv, []byte(`{"alg":"ES256"}`), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(tok, '.')
	raw := mustB64(t, tok[i+1:])
	if err := Verify(ES256, &priv.PublicKey, []byte(tok[:i]), raw); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	der, err := ecdsa.SignASN1(randReader{}, priv, sha256Sum([]byte(tok[:i])))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ES256, &priv.PublicKey, []byte(tok[:i]), der); agentctx.CodeOf(err) != agentctx.CodeBadSignature {
		t.Fatalf("DER signature: got %v, want bad_signature", err)
	}
}
