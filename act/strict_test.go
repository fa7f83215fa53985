package act_test

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
)

// TestErrClaimStrict covers ACT-R6 and the spec README: err is read by the
// strict reader, so a name in other case is neither read nor tolerated.
func TestErrClaimStrict(t *testing.T) {
	ctx := context.Background()
	m := issue(t, keyA, rootMandate())
	rec, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusFailed,
		Err: &act.ExecError{Code: "timeout"}, ExecTS: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		err  any
		want agentctx.Code
	}{
		"code and Code":      {map[string]any{"code": "a", "Code": "b"}, agentctx.CodeMalformed},
		"CODE only":          {map[string]any{"CODE": "x"}, agentctx.CodeInvalidClaim},
		"message not string": {map[string]any{"code": "x", "message": 5}, agentctx.CodeInvalidClaim},
		"valid":              {map[string]any{"code": "x", "message": "m", "detail": 1}, ""},
	} {
		t.Run("ACT-R6/"+name, func(t *testing.T) {
			tok := forge(t, keyB, rec, set("err", c.err))
			res, err := verifier(t, "auditor", now).VerifyRecord(ctx, tok, nil)
			wantCode(t, err, c.want)
			if err == nil && res.Record.Err.Code != "x" {
				t.Fatalf("err %+v", res.Record.Err)
			}
		})
	}
}

// TestExecTSBoundary covers ACT-R3: exec_ts == exp + skew is inside the
// window; NewRecord allows no skew, so every record it signs verifies.
func TestExecTSBoundary(t *testing.T) {
	ctx := context.Background()
	mm := rootMandate()
	m := issue(t, keyA, mm)
	exp := parse(t, m).Mandate.Expiry
	if _, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: exp}, now); err != nil {
		t.Fatalf("ACT-R3: exec_ts == exp: %v", err)
	}
	_, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: exp.Add(time.Second)}, now)
	wantCode(t, err, agentctx.CodeExpired)
	rec, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: exp}, now)
	if err != nil {
		t.Fatal(err)
	}
	at := exp.Add(act.DefaultSkew)
	for d, want := range map[time.Duration]agentctx.Code{0: "", time.Second: agentctx.CodeExpired} {
		tok := forge(t, keyB, rec, set("exec_ts", at.Add(d).Unix()))
		_, err := verifier(t, "auditor", at.Add(d)).VerifyRecord(ctx, tok, nil)
		wantCode(t, err, want)
	}
}

// TestHighS covers decision D-54: an ES256 signature with high S verifies,
// as RFC 7518 and crypto/ecdsa allow; its twin token (same claims, other
// signature bytes) is caught by the replay cache, as a ledger catches it
// with DAG-1.
func TestHighS(t *testing.T) {
	ctx := context.Background()
	m := issue(t, keyA, rootMandate())
	rec, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(rec, '.')
	sig, err := base64.RawURLEncoding.DecodeString(rec[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatal("ES256 signature")
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	hs := new(big.Int).Sub(n, s).FillBytes(make([]byte, 32))
	twin := rec[:i+1] + base64.RawURLEncoding.EncodeToString(append(sig[:32:32], hs...))
	if twin == rec {
		t.Fatal("twin equals the token")
	}
	v := verifier(t, "auditor", now)
	if _, err := v.VerifyRecord(ctx, twin, nil); err != nil {
		t.Fatalf("high-S twin: %v", err)
	}
	_, err = v.VerifyRecord(ctx, rec, nil)
	wantCode(t, err, agentctx.CodeReplay)
}
