package act_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/trust"
)

// forge re-signs tok's claims changed by mod, with key (and its kid).
func forge(t testing.TB, key *trust.SigningKey, tok string, mod func(map[string]any)) string {
	t.Helper()
	c := claimsOf(t, tok)
	mod(c)
	return signRaw(t, key, hdr(key), c)
}

func set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
func del(ks ...string) func(map[string]any) {
	return func(m map[string]any) {
		for _, k := range ks {
			delete(m, k)
		}
	}
}

type actCase struct {
	rule, name string
	audience   string
	at         time.Time
	phase      act.Phase
	build      func(t testing.TB) (string, []string)
	code       agentctx.Code
	claim      string
}

func mandateCase(rule, name string, code agentctx.Code, claim string, mod func(map[string]any)) actCase {
	return actCase{rule: rule, name: name, code: code, claim: claim, phase: act.PhaseMandate, build: func(t testing.TB) (string, []string) {
		return forge(t, keyA, issue(t, keyA, rootMandate()), mod), nil
	}}
}

func record(t testing.TB, in act.RecordInput) (string, string) {
	t.Helper()
	mtok := issue(t, keyA, rootMandate())
	if in.ExecAct == "" {
		in.ExecAct = "read.data"
	}
	if in.Status == "" {
		in.Status = act.StatusCompleted
	}
	if in.ExecTS.IsZero() {
		in.ExecTS = now.Add(time.Minute)
	}
	rtok, err := act.NewRecord(keyB, idB, parse(t, mtok), in, now)
	if err != nil {
		t.Fatal(err)
	}
	return rtok, mtok
}

func recordCase(rule, name string, code agentctx.Code, claim string, withMandate bool, mod func(map[string]any)) actCase {
	return actCase{rule: rule, name: name, code: code, claim: claim, phase: act.PhaseRecord, audience: "spiffe://ex.com/auditor",
		build: func(t testing.TB) (string, []string) {
			rtok, mtok := record(t, act.RecordInput{})
			if mod != nil {
				rtok = forge(t, keyB, rtok, mod)
			}
			if withMandate {
				return rtok, []string{mtok}
			}
			return rtok, nil
		}}
}

// delegated builds the chain A->B->C and applies mod to the C mandate,
// re-signed by B.
func delegatedCase(rule, name string, code agentctx.Code, mod func(map[string]any)) actCase {
	return actCase{rule: rule, name: name, code: code, phase: act.PhaseMandate, audience: idD, build: func(t testing.TB) (string, []string) {
		ch := chain3(t)
		leaf := ch[0]
		if mod != nil {
			leaf = forge(t, keyC, leaf, mod)
		}
		return leaf, ch[1:]
	}}
}

func actCases() []actCase {
	bigAction := strings.Repeat("a", 129)
	return []actCase{
		mandateCase("ACT-M1", "valid root mandate", "", "", func(map[string]any) {}),
		mandateCase("ACT-M1", "missing iss", agentctx.CodeMissingClaim, "iss", del("iss")),
		mandateCase("ACT-M2", "missing sub", agentctx.CodeMissingClaim, "sub", del("sub")),
		mandateCase("ACT-M3", "missing aud", agentctx.CodeMissingClaim, "aud", del("aud")),
		mandateCase("ECT-V10", "audience mismatch", agentctx.CodeAudienceMismatch, "aud", set("aud", []string{tool})),
		mandateCase("ACT-M3", "aud as a string", "", "", set("aud", idB)),
		mandateCase("ACT-M4", "missing iat", agentctx.CodeMissingClaim, "iat", del("iat")),
		mandateCase("ACT-M4", "missing exp", agentctx.CodeMissingClaim, "exp", del("exp")),
		mandateCase("ACT-M4", "exp not after iat", agentctx.CodeInvalidClaim, "exp", set("exp", now.Unix())),
		mandateCase("ECT-V8", "expired", agentctx.CodeExpired, "exp", func(m map[string]any) { m["iat"] = now.Unix() - 1000; m["exp"] = now.Unix() - 61 }),
		mandateCase("ECT-V9", "too old for use", agentctx.CodeTooOld, "iat", func(m map[string]any) { m["iat"] = now.Unix() - 1000; m["exp"] = now.Unix() + 600 }),
		mandateCase("ACT-M5", "missing jti", agentctx.CodeMissingClaim, "jti", del("jti")),
		mandateCase("ACT-M5", "jti not a UUID", agentctx.CodeInvalidClaim, "jti", set("jti", "t-1")),
		mandateCase("ACT-M6", "wid not a UUID", agentctx.CodeInvalidClaim, "wid", set("wid", "w")),
		mandateCase("ACT-M7", "missing task", agentctx.CodeMissingClaim, "task", del("task")),
		mandateCase("ACT-M7", "task not an object", agentctx.CodeInvalidClaim, "task", set("task", "report")),
		mandateCase("ACT-M7", "task without purpose", agentctx.CodeMissingClaim, "task.purpose", set("task", map[string]any{"created_by": "x"})),
		mandateCase("ACT-M7", "unknown data_sensitivity", agentctx.CodeInvalidClaim, "task.data_sensitivity", set("task", map[string]any{"purpose": "p", "data_sensitivity": "secret"})),
		mandateCase("ACT-M7", "other task members preserved", "", "", set("task", map[string]any{"purpose": "p", "ticket": "T-1"})),
		mandateCase("ACT-M8", "missing cap", agentctx.CodeMissingClaim, "cap", del("cap")),
		mandateCase("ACT-M8", "empty cap", agentctx.CodeInvalidClaim, "cap", set("cap", []any{})),
		mandateCase("ACT-M8", "duplicate action", agentctx.CodeInvalidClaim, "cap", set("cap", []any{map[string]any{"action": "a"}, map[string]any{"action": "a"}})),
		mandateCase("ACT-M8", "capability without action", agentctx.CodeInvalidClaim, "cap", set("cap", []any{map[string]any{"constraints": map[string]any{}}})),
		mandateCase("ACT-M8", "constraints not an object", agentctx.CodeInvalidClaim, "cap", set("cap", []any{map[string]any{"action": "a", "constraints": []int{1}}})),
		mandateCase("ACT-A1", "upper-case action", agentctx.CodeInvalidClaim, "cap", set("cap", []any{map[string]any{"action": "Read.Data"}})),
		mandateCase("ACT-A1", "empty segment", agentctx.CodeInvalidClaim, "cap", set("cap", []any{map[string]any{"action": "read..data"}})),
		mandateCase("ACT-A1", "action of 129 bytes", agentctx.CodeInvalidClaim, "cap", set("cap", []any{map[string]any{"action": bigAction}})),
		mandateCase("ACT-A1", "action of 128 bytes", "", "", set("cap", []any{map[string]any{"action": bigAction[:128]}})),
		mandateCase("ACT-M9", "del not an object", agentctx.CodeInvalidClaim, "del", set("del", 1)),
		mandateCase("ACT-M9", "del without chain", agentctx.CodeInvalidClaim, "del", set("del", map[string]any{"depth": 0, "max_depth": 2})),
		mandateCase("ACT-D1", "root setting max_depth", "", "", set("del", map[string]any{"depth": 0, "max_depth": 1, "chain": []any{}})),
		mandateCase("ACT-M10", "oversight with a bad action", agentctx.CodeInvalidClaim, "oversight", set("oversight", map[string]any{"approval_required": []string{"Bad"}})),
		mandateCase("ACT-P1", "some record claims only", agentctx.CodePhaseError, "", set("exec_act", "read.data")),
		mandateCase("ECT-V3", "typ exec+jwt", agentctx.CodeInvalidTyp, "typ", func(map[string]any) {}),
		{rule: "ACT-V1", name: "record where a mandate is expected", code: agentctx.CodePhaseError, phase: act.PhaseMandate, audience: idB,
			build: func(t testing.TB) (string, []string) { r, _ := record(t, act.RecordInput{}); return r, nil }},
		{rule: "ACT-V1", name: "mandate where a record is expected", code: agentctx.CodePhaseError, phase: act.PhaseRecord, audience: idB,
			build: func(t testing.TB) (string, []string) { return issue(t, keyA, rootMandate()), nil }},
		{rule: "ACT-H1", name: "typ with media type prefix", phase: act.PhaseMandate, build: func(t testing.TB) (string, []string) {
			h := hdr(keyA)
			h["typ"] = "application/ACT+JWT"
			return signRaw(t, keyA, h, claimsOf(t, issue(t, keyA, rootMandate()))), nil
		}},
		{rule: "ECT-V4", name: "alg none", code: agentctx.CodeAlgNotAllowed, phase: act.PhaseMandate, build: func(t testing.TB) (string, []string) {
			tok := issue(t, keyA, rootMandate())
			parts := strings.Split(tok, ".")
			return jws.EncodeSegment([]byte(`{"alg":"none","kid":"a-1","typ":"act+jwt"}`)) + "." + parts[1] + ".", nil
		}},
		{rule: "TR-7a", name: "signed by another agent", code: agentctx.CodeUnknownKey, phase: act.PhaseMandate, build: func(t testing.TB) (string, []string) {
			return forge(t, keyB, issue(t, keyA, rootMandate()), func(map[string]any) {}), nil
		}},

		// Delegation.
		delegatedCase("ACT-D5", "valid chain of three", "", nil),
		{rule: "ACT-D5", name: "missing parent", code: agentctx.CodeDelegationBroken, phase: act.PhaseMandate, audience: idD,
			build: func(t testing.TB) (string, []string) { ch := chain3(t); return ch[0], ch[1:2] }},
		{rule: "ACT-D5", name: "parents in the wrong order", code: agentctx.CodeDelegationBroken, phase: act.PhaseMandate, audience: idD,
			build: func(t testing.TB) (string, []string) { ch := chain3(t); return ch[0], []string{ch[2], ch[1]} }},
		{rule: "ACT-D5", name: "altered parent", code: agentctx.CodeDelegationBroken, phase: act.PhaseMandate, audience: idD,
			build: func(t testing.TB) (string, []string) {
				ch := chain3(t)
				return ch[0], []string{forge(t, keyB, ch[1], set("task", map[string]any{"purpose": "other"})), ch[2]}
			}},
		{rule: "ACT-D5", name: "parents given to a root", code: agentctx.CodeDelegationBroken, phase: act.PhaseMandate, audience: idB,
			build: func(t testing.TB) (string, []string) { ch := chain3(t); return ch[2], ch[1:2] }},
		delegatedCase("ACT-D1", "depth over max_depth", agentctx.CodeDelegationDepth, func(m map[string]any) {
			d := m["del"].(map[string]any)
			d["max_depth"] = 1
		}),
		delegatedCase("ACT-D1", "max_depth widened", agentctx.CodePrivilegeEscalation, func(m map[string]any) {
			d := m["del"].(map[string]any)
			d["max_depth"] = 5
		}),
		delegatedCase("ACT-D5", "chain shorter than depth", agentctx.CodeDelegationBroken, func(m map[string]any) {
			d := m["del"].(map[string]any)
			d["chain"] = d["chain"].([]any)[:1]
		}),
		delegatedCase("TR-7a", "issuer is not the parent's sub", agentctx.CodeUnknownKey, set("iss", idB)),
		delegatedCase("ACT-D3", "action not in the parent", agentctx.CodePrivilegeEscalation, set("cap", []any{map[string]any{"action": "write.report"}})),
		delegatedCase("ACT-D3", "outlives the parent", agentctx.CodePrivilegeEscalation, set("exp", now.Unix()+3600)),
		delegatedCase("ACT-D3", "leaves the workflow", agentctx.CodePrivilegeEscalation, set("wid", "9d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77")),
		delegatedCase("ACT-D4", "max_calls raised", agentctx.CodePrivilegeEscalation, constraints(`{"max_calls":6,"allowed_tables":["sales"],"deny_columns":["ssn","salary"],"region":"eu"}`)),
		delegatedCase("ACT-D4", "allowed_ widened", agentctx.CodePrivilegeEscalation, constraints(`{"max_calls":1,"allowed_tables":["sales","costs"],"deny_columns":["ssn","salary"],"region":"eu"}`)),
		delegatedCase("ACT-D4", "deny_ narrowed", agentctx.CodePrivilegeEscalation, constraints(`{"max_calls":1,"allowed_tables":["sales"],"deny_columns":["ssn"],"region":"eu"}`)),
		delegatedCase("ACT-D4", "constraint dropped", agentctx.CodePrivilegeEscalation, constraints(`{"max_calls":1,"allowed_tables":["sales"],"deny_columns":["ssn","salary"]}`)),
		delegatedCase("ACT-D4", "unknown constraint changed", agentctx.CodePrivilegeEscalation, constraints(`{"max_calls":1,"allowed_tables":["sales"],"deny_columns":["ssn","salary"],"region":"us"}`)),
		delegatedCase("ACT-D4", "constraint added and tightened", "", constraints(`{"max_calls":0,"allowed_tables":[],"deny_columns":["ssn","salary","name"],"region":"eu","max_rows":5}`)),

		// Records.
		recordCase("ACT-R1", "valid record, record only", "", "", false, nil),
		recordCase("ACT-P3", "valid record with its mandate", "", "", true, nil),
		recordCase("ACT-R1", "exec_act not in cap", agentctx.CodeCapabilityViolation, "exec_act", false, set("exec_act", "delete.data")),
		recordCase("ACT-A1", "exec_act outside the grammar", agentctx.CodeInvalidClaim, "exec_act", false, set("exec_act", "Read Data")),
		recordCase("ACT-R2", "missing pred", agentctx.CodeMissingClaim, "pred", false, del("pred")),
		recordCase("ACT-R2", "legacy par", "", "", false, func(m map[string]any) { delete(m, "pred"); m["par"] = []string{jtiP} }),
		recordCase("ACT-R2", "pred names itself", agentctx.CodeInvalidClaim, "pred", false, func(m map[string]any) { m["pred"] = []any{m["jti"]} }),
		recordCase("ACT-R3", "exec_ts before iat", agentctx.CodeInvalidClaim, "exec_ts", false, set("exec_ts", now.Unix()-10)),
		later(recordCase("ACT-R3", "exec_ts after exp", agentctx.CodeExpired, "exec_ts", false, set("exec_ts", now.Unix()+900+61))),
		later(recordCase("ACT-R3", "exec_ts within skew of exp", "", "", false, set("exec_ts", now.Unix()+900+59))),
		recordCase("ACT-R3", "exec_ts in the future", agentctx.CodeInvalidClaim, "exec_ts", false, set("exec_ts", now.Unix()+600)),
		recordCase("ACT-R3", "exec_ts as a string", agentctx.CodeInvalidClaim, "exec_ts", false, set("exec_ts", "soon")),
		recordCase("ACT-R4", "unknown status", agentctx.CodeInvalidClaim, "status", false, set("status", "done")),
		recordCase("ACT-R5", "hash with prefix", agentctx.CodeInvalidClaim, "inp_hash", false, set("inp_hash", "sha-256:"+agentctx.HashBytes(nil))),
		recordCase("ACT-R6", "failed without err", agentctx.CodeMissingClaim, "err", false, set("status", "failed")),
		recordCase("ACT-R6", "completed with err", agentctx.CodeInvalidClaim, "err", false, set("err", map[string]any{"code": "x"})),
		recordCase("ACT-R6", "failed with err", "", "", false, func(m map[string]any) {
			m["status"] = "failed"
			m["err"] = map[string]any{"code": "timeout", "message": "db"}
		}),
		recordCase("ACT-R6", "err without code", agentctx.CodeInvalidClaim, "err", false, func(m map[string]any) { m["status"] = "failed"; m["err"] = map[string]any{"message": "db"} }),
		recordCase("ACT-P3", "record with a changed cap", agentctx.CodeMandateMismatch, "cap", true, set("cap", []any{map[string]any{"action": "read.data"}})),
		recordCase("ACT-P3", "record with a changed aud", agentctx.CodeMandateMismatch, "aud", true, set("aud", []string{idB})),
		recordCase("ACT-P3", "record adding a mandate claim", agentctx.CodeMandateMismatch, "oversight2", true, set("oversight2", 1)),
		{rule: "TR-7a", name: "record signed by the mandate issuer", code: agentctx.CodeUnknownKey, phase: act.PhaseRecord,
			build: func(t testing.TB) (string, []string) {
				r, _ := record(t, act.RecordInput{})
				return forge(t, keyA, r, func(map[string]any) {}), nil
			}},
		{rule: "ECT-V6", name: "record with a tampered mandate", code: agentctx.CodeBadSignature, phase: act.PhaseRecord,
			build: func(t testing.TB) (string, []string) {
				r, m := record(t, act.RecordInput{})
				parts := strings.Split(m, ".")
				return r, []string{parts[0] + "." + parts[1] + "." + strings.Split(issue(t, keyA, rootMandate()), ".")[2]}
			}},
		{rule: "ACT-P3", name: "record with another task's mandate", code: agentctx.CodeMandateMismatch, claim: "jti", phase: act.PhaseRecord,
			build: func(t testing.TB) (string, []string) {
				r, _ := record(t, act.RecordInput{})
				return r, []string{issue(t, keyA, rootMandate())}
			}},
		{rule: "ACT-P4", name: "record verified by a party outside aud", phase: act.PhaseRecord, audience: "spiffe://ex.com/ledger",
			build: func(t testing.TB) (string, []string) { r, m := record(t, act.RecordInput{}); return r, []string{m} }},
		{rule: "ACT-P3", name: "record of a delegated mandate with its chain", phase: act.PhaseRecord, audience: "spiffe://ex.com/auditor",
			build: func(t testing.TB) (string, []string) {
				ch := chain3(t)
				r, err := act.NewRecord(keyD, idD, parse(t, ch[0]), act.RecordInput{ExecAct: "read.data", Status: act.StatusPartial, ExecTS: now.Add(time.Second)}, now)
				if err != nil {
					t.Fatal(err)
				}
				return r, ch
			}},
	}
}

// later verifies the case a day after the mandate was issued.
func later(c actCase) actCase { c.at = now.Add(24 * time.Hour); return c }

func constraints(c string) func(map[string]any) {
	return func(m map[string]any) {
		var v any
		json.Unmarshal([]byte(c), &v)
		m["cap"] = []any{map[string]any{"action": "read.data", "constraints": v}}
	}
}

// TestVerifyRules checks the rules of spec/act.md, one per subtest named
// "<rule ID>/<scenario>".
func TestVerifyRules(t *testing.T) {
	for _, c := range actCases() {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			aud := c.audience
			if aud == "" {
				aud = idB
			}
			at := c.at
			if at.IsZero() {
				at = now.Add(2 * time.Minute)
			}
			tok, sup := c.build(t)
			if c.name == "typ exec+jwt" {
				h := hdr(keyA)
				h["typ"] = "exec+jwt"
				tok = signRaw(t, keyA, h, claimsOf(t, tok))
			}
			res, err := verifier(t, aud, at).Verify(context.Background(), tok, sup, c.phase)
			wantCode(t, err, c.code)
			if err != nil {
				var e *agentctx.Error
				if !asErr(err, &e) || e.Rule != c.rule {
					t.Fatalf("rule %s, want %s (%v)", e.Rule, c.rule, err)
				}
				if c.claim != "" && (!asErr(err, &e) || e.Claim != c.claim) {
					t.Fatalf("claim %q, want %q (%v)", e.Claim, c.claim, err)
				}
				return
			}
			if res.Phase != c.phase {
				t.Fatalf("phase %v, want %v", res.Phase, c.phase)
			}
		})
	}
}
