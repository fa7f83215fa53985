package act_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

const (
	idA  = "spiffe://ex.com/agent/a"
	idB  = "spiffe://ex.com/agent/b"
	idC  = "spiffe://ex.com/agent/c"
	idD  = "spiffe://ex.com/agent/d"
	tool = "spiffe://ex.com/tool/db"
	wid1 = "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"
	jtiP = "1c8d6f5f-6a8b-4d2f-8e66-9c9d1a5b3f22"
)

var (
	now  = time.Unix(1767225600, 0)
	keyA = testkeys.EdDSA("act a", "a-1")
	keyB = testkeys.ES256("act b", "b-1")
	keyC = testkeys.EdDSA("act c", "c-1")
	keyD = testkeys.EdDSA("act d", "d-1")
)

func trustSet(t testing.TB) *trust.Set {
	t.Helper()
	s := trust.NewSet()
	for id, k := range map[string]*trust.SigningKey{idA: keyA, idB: keyB, idC: keyC, idD: keyD} {
		if err := s.Add(trust.Binding{ID: id}, k.Public()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func verifier(t testing.TB, audience string, at time.Time) *act.Verifier {
	t.Helper()
	v, err := act.NewVerifier(act.Config{Trust: trustSet(t), Audience: audience, Clock: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rootMandate() *act.Mandate {
	return &act.Mandate{
		Issuer: idA, Subject: idB, Audience: []string{idB, tool}, WorkflowID: wid1,
		Task: act.Task{Purpose: "quarterly report", CreatedBy: "alice@example.com", DataSensitivity: "internal"},
		Capabilities: []act.Capability{
			{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":10,"allowed_tables":["sales","costs"],"deny_columns":["ssn"],"region":"eu"}`)},
			{Action: "write.report"},
			{Action: "approve.release"},
		},
		Oversight: &act.Oversight{ApprovalRequired: []string{"approve.release"}, Approver: "bob@example.com"},
	}
}

func issue(t testing.TB, key *trust.SigningKey, m *act.Mandate) string {
	t.Helper()
	tok, err := act.NewMandate(key, m, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func parse(t testing.TB, tok string) *act.Result {
	t.Helper()
	r, err := act.ParseUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// chain3 returns A->B, B->C, C->D mandates: leaf first.
func chain3(t testing.TB) []string {
	t.Helper()
	m1 := issue(t, keyA, rootMandate())
	m2, err := act.Delegate(keyB, parse(t, m1), &act.Mandate{Subject: idC, Audience: []string{idC},
		Task:         act.Task{Purpose: "read sales"},
		Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":5,"allowed_tables":["sales"],"deny_columns":["ssn","salary"],"region":"eu"}`)}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	m3, err := act.Delegate(keyC, parse(t, m2), &act.Mandate{Subject: idD, Audience: []string{idD},
		Task:         act.Task{Purpose: "read sales, once"},
		Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":1,"allowed_tables":["sales"],"deny_columns":["ssn","salary"],"region":"eu"}`)}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return []string{m3, m2, m1}
}

func code(err error) agentctx.Code { return agentctx.CodeOf(err) }

func wantCode(t *testing.T, err error, want agentctx.Code) {
	t.Helper()
	if code(err) != want {
		t.Fatalf("got %q (%v), want %q", code(err), err, want)
	}
	if err != nil {
		var e *agentctx.Error
		if !errors.As(err, &e) || e.Rule == "" {
			t.Fatalf("error %v carries no rule", err)
		}
	}
}

func TestMandateRoundTrip(t *testing.T) {
	tok := issue(t, keyA, rootMandate())
	res, err := verifier(t, idB, now).VerifyMandate(context.Background(), tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Mandate
	if res.Phase != act.PhaseMandate || m.Issuer != idA || m.Subject != idB || m.Task.Purpose != "quarterly report" ||
		len(m.Capabilities) != 3 || res.DelegationDepth() != 0 || !m.Expiry.Equal(now.Add(act.DefaultMandateLifetime)) {
		t.Fatalf("%+v", m)
	}
	h, _ := jws.DecodeSegment(strings.Split(tok, ".")[0])
	if string(h) != `{"alg":"EdDSA","kid":"a-1","typ":"act+jwt"}` {
		t.Fatalf("header %s", h)
	}
}

// TestDelegationChain3 covers ACT-D1..ACT-D5 on a valid three-link chain.
func TestDelegationChain3(t *testing.T) {
	ch := chain3(t)
	res, err := verifier(t, idD, now).VerifyMandate(context.Background(), ch[0], ch[1:])
	if err != nil {
		t.Fatal(err)
	}
	d := res.Mandate.Delegation
	if res.DelegationDepth() != 2 || d.MaxDepth != act.DefaultMaxDepth || len(d.Chain) != 2 || d.Chain[0].Issuer != idA || d.Chain[1].Issuer != idB ||
		d.Chain[1].Hash != agentctx.HashBytes([]byte(ch[1])) || res.Mandate.Issuer != idC || res.Mandate.WorkflowID != wid1 {
		t.Fatalf("del %+v, mandate %+v", d, res.Mandate)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	mtok := issue(t, keyA, rootMandate())
	in := act.RecordInput{ExecAct: "read.data", Pred: []string{jtiP}, ExecTS: now.Add(time.Minute), Status: act.StatusCompleted,
		InputHash: agentctx.HashBytes([]byte("q")), OutputHash: agentctx.HashBytes([]byte("rows"))}
	rtok, err := act.NewRecord(keyB, idB, parse(t, mtok), in, now)
	if err != nil {
		t.Fatal(err)
	}
	// Verified by an auditor long after the mandate expired: as of exec_ts, no audience check.
	v := verifier(t, "spiffe://ex.com/auditor", now.Add(48*time.Hour))
	res, err := v.VerifyRecord(context.Background(), rtok, []string{mtok})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Record
	if !res.MandateVerified || r.ExecAct != "read.data" || r.Status != "completed" || r.Pred[0] != jtiP || r.Issuer != idA ||
		r.Subject != idB || !r.ExecTS.Equal(now.Add(time.Minute)) || r.ID != parse(t, mtok).Mandate.ID || res.KeyID != "b-1" {
		t.Fatalf("%+v", res)
	}
	res2, err := verifier(t, "x", now).VerifyRecord(context.Background(), rtok, nil)
	if err != nil || res2.MandateVerified {
		t.Fatalf("record only: %v, verified %v", err, res2 != nil && res2.MandateVerified)
	}
}

// TestTypeSeparation: an ACT verifier refuses ECTs; the ECT verifier's
// refusal of ACTs is tested in package ect (ECT-V3).
func TestTypeSeparation(t *testing.T) {
	ectTok := signRaw(t, keyA, map[string]any{"alg": "EdDSA", "kid": "a-1", "typ": "exec+jwt"}, map[string]any{
		"iss": idA, "aud": idB, "iat": now.Unix(), "exp": now.Unix() + 60, "jti": jtiP, "exec_act": "x", "pred": []string{}})
	_, err := verifier(t, idB, now).Verify(context.Background(), ectTok, nil, act.PhaseDetect)
	wantCode(t, err, agentctx.CodeInvalidTyp)
}

func signRaw(t testing.TB, key *trust.SigningKey, hdr, payload any) string {
	t.Helper()
	return testkeys.SignJSON(t, key, hdr, payload)
}

func hdr(k *trust.SigningKey) map[string]any {
	return map[string]any{"alg": k.Alg(), "kid": k.KeyID(), "typ": "act+jwt"}
}

// claimsOf returns the payload of tok as a map, to build forged variants.
func claimsOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(parse(t, tok).Payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAuthorize(t *testing.T) {
	res, err := verifier(t, idB, now).VerifyMandate(context.Background(), issue(t, keyA, rootMandate()), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := res
	c, err := m.Authorize("read.data", nil)
	if err != nil || !strings.Contains(string(c.Constraints), `"max_calls":10`) {
		t.Fatalf("%v %v", c, err)
	}
	_, err = m.Authorize("delete.data", nil)
	t.Run("ACT-V3/not in cap", func(t *testing.T) { wantCode(t, err, agentctx.CodeCapabilityViolation) })
	_, err = m.Authorize("approve.release", nil)
	t.Run("ACT-V3/approval missing", func(t *testing.T) { wantCode(t, err, agentctx.CodeApprovalRequired) })
	_, err = m.Authorize("approve.release", &act.Approval{MandateID: res.Mandate.ID, Action: "approve.release", Approver: "mallory"})
	t.Run("ACT-V3/approval by someone else", func(t *testing.T) { wantCode(t, err, agentctx.CodeApprovalRequired) })
	_, err = m.Authorize("approve.release", &act.Approval{MandateID: jtiP, Action: "approve.release", Approver: "bob@example.com"})
	t.Run("ACT-V3/approval for another mandate", func(t *testing.T) { wantCode(t, err, agentctx.CodeApprovalRequired) })
	_, err = m.Authorize("approve.release", &act.Approval{MandateID: res.Mandate.ID, Action: "approve.release", Approver: "bob@example.com"})
	t.Run("ACT-V3/approved", func(t *testing.T) { wantCode(t, err, "") })
}

func asErr(err error, target **agentctx.Error) bool { return errors.As(err, target) }
