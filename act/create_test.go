package act_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/trust"
)

// TestDelegateRefusesWider covers ACT-D1, ACT-D3 and ACT-D4 at creation:
// nothing wider than the parent, nor deeper than allowed, is signed.
func TestDelegateRefusesWider(t *testing.T) {
	parent := parse(t, issue(t, keyA, rootMandate()))
	cases := map[string]struct {
		child *act.Mandate
		code  agentctx.Code
	}{
		"new action": {&act.Mandate{Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"},
			Capabilities: []act.Capability{{Action: "delete.data"}}}, agentctx.CodePrivilegeEscalation},
		"looser constraint": {&act.Mandate{Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"},
			Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":11,"allowed_tables":["sales"],"deny_columns":["ssn"],"region":"eu"}`)}}}, agentctx.CodePrivilegeEscalation},
		"outlives parent": {&act.Mandate{Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"}, Expiry: now.Add(2 * time.Hour),
			Capabilities: []act.Capability{{Action: "write.report"}}}, agentctx.CodePrivilegeEscalation},
		"wider max_depth": {&act.Mandate{Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"}, Delegation: &act.Delegation{MaxDepth: 9},
			Capabilities: []act.Capability{{Action: "write.report"}}}, agentctx.CodePrivilegeEscalation},
		"issued by someone else": {&act.Mandate{Issuer: idD, Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"},
			Capabilities: []act.Capability{{Action: "write.report"}}}, agentctx.CodeDelegationBroken},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tok, err := act.Delegate(keyB, parent, c.child, now)
			wantCode(t, err, c.code)
			if tok != "" {
				t.Fatal("a token was signed")
			}
		})
	}
	// ACT-D1: a root limiting the chain to one hop.
	root := rootMandate()
	root.Delegation = &act.Delegation{MaxDepth: 1, Chain: []act.Link{}}
	r := parse(t, issue(t, keyA, root))
	one, err := act.Delegate(keyB, r, &act.Mandate{Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"}, Capabilities: []act.Capability{{Action: "write.report"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = act.Delegate(keyC, parse(t, one), &act.Mandate{Subject: idD, Audience: []string{idD}, Task: act.Task{Purpose: "p"}, Capabilities: []act.Capability{{Action: "write.report"}}}, now)
	t.Run("ACT-D1/depth beyond max_depth", func(t *testing.T) { wantCode(t, err, agentctx.CodeDelegationDepth) })
}

// TestNewRecordRefusals covers ACT-P2 and ACT-R1/R6 at creation.
func TestNewRecordRefusals(t *testing.T) {
	m := parse(t, issue(t, keyA, rootMandate()))
	ok := act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: now.Add(time.Minute)}
	check := func(name string, key *trust.SigningKey, executor string, in act.RecordInput, code agentctx.Code) {
		t.Run(name, func(t *testing.T) {
			tok, err := act.NewRecord(key, executor, m, in, now)
			wantCode(t, err, code)
			if code != "" && tok != "" {
				t.Fatal("a token was signed")
			}
		})
	}
	check("ACT-P2/signer is not sub", keyC, idC, ok, agentctx.CodePhaseError)
	check("ACT-R1/action not in cap", keyB, idB, act.RecordInput{ExecAct: "drop.table", Status: act.StatusCompleted}, agentctx.CodeCapabilityViolation)
	check("ACT-R4/no status", keyB, idB, act.RecordInput{ExecAct: "read.data"}, agentctx.CodeInvalidClaim)
	check("ACT-R6/failed without err", keyB, idB, act.RecordInput{ExecAct: "read.data", Status: act.StatusFailed}, agentctx.CodeMissingClaim)
	check("ACT-R3/after exp", keyB, idB, act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: now.Add(time.Hour)}, agentctx.CodeExpired)
	check("ACT-P2/ok", keyB, idB, ok, "")
	rec, _ := act.NewRecord(keyB, idB, m, ok, now)
	_, err := act.NewRecord(keyB, idB, parse(t, rec), ok, now)
	t.Run("ACT-P2/record of a record", func(t *testing.T) { wantCode(t, err, agentctx.CodePhaseError) })
	// ACT-P2: iat stays the mandate's, claims copied unchanged.
	r := parse(t, rec)
	if !r.Record.IssuedAt.Equal(m.Mandate.IssuedAt) || r.Record.ID != m.Mandate.ID || string(r.Payload[:len(m.Payload)-1]) != string(m.Payload[:len(m.Payload)-1]) {
		t.Fatalf("record does not repeat its mandate:\n%s\n%s", r.Payload, m.Payload)
	}
}

func TestNewMandateRefusesInvalid(t *testing.T) {
	for name, mod := range map[string]func(*act.Mandate){
		"no subject":      func(m *act.Mandate) { m.Subject = "" },
		"no capabilities": func(m *act.Mandate) { m.Capabilities = nil },
		"bad action":      func(m *act.Mandate) { m.Capabilities = []act.Capability{{Action: "Bad Action"}} },
		"no purpose":      func(m *act.Mandate) { m.Task.Purpose = "" },
		"bad wid":         func(m *act.Mandate) { m.WorkflowID = "w" },
		"bad sensitivity": func(m *act.Mandate) { m.Task.DataSensitivity = "top-secret" },
	} {
		m := rootMandate()
		mod(m)
		if tok, err := act.NewMandate(keyA, m, now); err == nil || tok != "" {
			t.Errorf("%s: signed", name)
		}
	}
}

// TestRecordReplayAndBatchOrder: ACT-V5 replay of records, in input order
// across a batch; mandates may be presented again.
func TestRecordReplayAndBatchOrder(t *testing.T) {
	rec, mtok := record(t, act.RecordInput{})
	v := verifier(t, idB, now.Add(2*time.Minute))
	toks := []string{mtok, rec, mtok, rec, rec}
	res, errs := v.VerifyBatch(context.Background(), toks, nil, act.PhaseDetect, 0)
	for i, want := range []agentctx.Code{"", "", "", agentctx.CodeReplay, agentctx.CodeReplay} {
		if code(errs[i]) != want || (want == "" && res[i] == nil) {
			t.Fatalf("token %d: %v, want %q", i, errs[i], want)
		}
	}
}

// TestSharedShapes: an ACT record and an ECT of one workflow carry jti, wid,
// pred, exec_act, iat, exp, aud and the hashes in the same JSON shapes, and an
// ECT may name the ACT task as its predecessor.
func TestSharedShapes(t *testing.T) {
	in, out := []byte("input bytes"), []byte("output bytes")
	rec, _ := record(t, act.RecordInput{InputHash: agentctx.HashBytes(in), OutputHash: agentctx.HashBytes(out), Pred: []string{jtiP}})
	r := parse(t, rec)
	ectTok, err := ect.Create(keyC, &ect.Claims{Issuer: idC, Audience: []string{idD}, WorkflowID: wid1, ExecAct: "read.data",
		Pred: []string{r.Record.ID}, InputHash: agentctx.HashBytes(in), OutputHash: agentctx.HashBytes(out)}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, ectPayload, err := ect.UnsafeDecodeWithoutVerification(ectTok)
	if err != nil {
		t.Fatal(err)
	}
	var a, e map[string]json.RawMessage
	if err := json.Unmarshal(r.Payload, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ectPayload, &e); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"wid", "exec_act", "inp_hash", "out_hash"} {
		if string(a[k]) != string(e[k]) {
			t.Errorf("%s: ACT %s, ECT %s", k, a[k], e[k])
		}
	}
	kind := func(raw json.RawMessage) byte { return raw[0] }
	for _, k := range []string{"jti", "wid", "pred", "exec_act", "iat", "exp", "aud", "inp_hash", "out_hash"} {
		if len(a[k]) == 0 || len(e[k]) == 0 || kind(a[k]) != kind(e[k]) {
			t.Errorf("%s has different shapes: ACT %s, ECT %s", k, a[k], e[k])
		}
	}
	if string(e["pred"]) != `["`+r.Record.ID+`"]` {
		t.Errorf("ECT pred %s does not name the ACT task %s", e["pred"], r.Record.ID)
	}
	// And the ECT verifier refuses the ACT record (typ separation, ECT-V3).
	ev, _ := ect.NewVerifier(ect.Config{Trust: trustSet(t), Audience: idB, Clock: func() time.Time { return now }})
	if _, err := ev.Verify(context.Background(), rec); code(err) != agentctx.CodeInvalidTyp {
		t.Fatalf("ECT verifier on an ACT: %v", err)
	}
}
