package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

func writeTrust(t testing.TB, id string, keys ...trust.Key) string {
	t.Helper()
	var jwks []json.RawMessage
	for _, k := range keys {
		j, err := trust.PublicJWK(k)
		if err != nil {
			t.Fatal(err)
		}
		jwks = append(jwks, j)
	}
	b, _ := json.Marshal(map[string]any{"issuers": []any{map[string]any{"id": id, "keys": jwks}}})
	p := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVerifyBatch: one JSON verdict per input line, in input order, whatever
// the verdicts, then exit 1 because some were refused; supporting tokens after a comma are ignored for ECT;
// the replay cache spans the batch, and of two copies the later is the replay.
func TestVerifyBatch(t *testing.T) {
	now := time.Unix(1767225600, 0)
	ed := testkeys.EdDSA("cli-batch", "k-ed")
	ec := testkeys.ES256("cli-batch", "k-ec")
	trustPath := writeTrust(t, "spiffe://ex.com/a", ed.Public(), ec.Public())
	var toks []string
	for i := 0; i < 300; i++ {
		k := ed
		if i%2 == 1 {
			k = ec
		}
		tok, err := ect.Create(k, &ect.Claims{Issuer: "spiffe://ex.com/a", Audience: []string{"spiffe://ex.com/b"}, ExecAct: "t"}, now)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	lines := append([]string{}, toks...)
	lines = append(lines, "garbage", "", toks[5], toks[7]+","+toks[8]+",x", toks[3]+"\r")
	want := make([]string, len(lines))
	want[300], want[301], want[302], want[303], want[304] = "malformed", "malformed", "replay", "replay", "replay"

	var out, errb bytes.Buffer
	code := run([]string{"verify", "--trust", trustPath, "--audience", "spiffe://ex.com/b", "--now", "1767225600", "--batch", "-"},
		strings.NewReader(strings.Join(lines, "\n")+"\n"), &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("%d results for %d lines", len(got), len(lines))
	}
	for i, g := range got {
		var v verdict
		if err := json.Unmarshal([]byte(g), &v); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, g)
		}
		if string(v.Code) != want[i] || v.Valid != (want[i] == "") {
			t.Fatalf("line %d: %s, want code %q", i, g, want[i])
		}
		if v.Valid {
			var c struct{ Jti string }
			json.Unmarshal(v.Claims, &c)
			var sent struct{ Jti string }
			_, p, _ := ect.UnsafeDecodeWithoutVerification(toks[i])
			json.Unmarshal(p, &sent)
			if c.Jti != sent.Jti || c.Jti == "" {
				t.Fatalf("line %d: result for jti %s, sent %s", i, c.Jti, sent.Jti)
			}
		}
	}
}

func TestVerifyBatchLongLine(t *testing.T) {
	trustPath := writeTrust(t, "a", testkeys.EdDSA("x", "k").Public())
	var out, errb bytes.Buffer
	in := strings.Repeat("a", maxLine+10) + "\nshort\n"
	code := run([]string{"verify", "--trust", trustPath, "--audience", "b", "--batch", "-"}, strings.NewReader(in), &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != 2 || !strings.Contains(got[0], `"code":"too_large"`) || !strings.Contains(got[1], `"code":"malformed"`) {
		t.Fatalf("%q", got)
	}
}

func TestLoadTrustAnyIssuer(t *testing.T) {
	k := testkeys.EdDSA("x", "k").Public()
	j, _ := trust.PublicJWK(k)
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwks, []byte(`{"keys":[`+string(j)+`]}`), 0o644)
	if _, err := loadTrust(jwks, false); err == nil {
		t.Fatal("plain JWKS accepted without --any-issuer")
	}
	r, err := loadTrust(jwks, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ResolveKey(t.Context(), "anyone", "k", "EdDSA"); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTrust(filepath.Join(dir, "missing"), true); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestVerdictOneLine: a payload with line breaks (valid JSON white space)
// still yields a one-line verdict, with the claims intact.
func TestVerdictOneLine(t *testing.T) {
	now := time.Unix(1767225600, 0)
	ed := testkeys.EdDSA("cli-batch", "k-ed")
	trustPath := writeTrust(t, "spiffe://ex.com/a", ed.Public())
	payload := "{\n \"iss\": \"spiffe://ex.com/a\",\r\n \"aud\": \"spiffe://ex.com/b\", \"iat\": 1767225600, \"exp\": 1767226200,\n" +
		" \"jti\": \"0b7c5e4e-5f7a-4c1e-9d55-8b8c0f4a2e11\", \"exec_act\": \"a<b&c\", \"pred\": []\n}"
	tok, err := ed.Sign([]byte(`{"alg":"EdDSA","kid":"k-ed","typ":"exec+jwt"}`), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"verify", "--trust", trustPath, "--audience", "spiffe://ex.com/b", "--now", fmt.Sprint(now.Unix()), "--batch", "-"},
		strings.NewReader(tok+"\n"+tok+"\n"), &out, &errb)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if code != 1 || len(lines) != 2 { // the second copy is a replay
		t.Fatalf("exit %d, %d lines: %q %s", code, len(lines), out.String(), errb.String())
	}
	var v verdict
	if err := json.Unmarshal([]byte(lines[0]), &v); err != nil || !v.Valid {
		t.Fatalf("%v %s", err, lines[0])
	}
	var c struct {
		ExecAct string `json:"exec_act"`
	}
	if err := json.Unmarshal(v.Claims, &c); err != nil || c.ExecAct != "a<b&c" {
		t.Fatalf("claims %s", v.Claims)
	}
}
