package main

import (
	"encoding/json"
	"log"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

// ACTVector is one ACT scenario. A verifier configured with the folder's
// trust.json, Audience and the clock at Now first verifies each entry of
// Before (each must be valid), then Token with its Supporting tokens
// (nearest first) as Phase ("mandate", "record" or "any"), and must answer
// Expect. As a line of "agentctx verify --kind act --batch": Token and
// Supporting joined by commas.
type ACTVector struct {
	Description string     `json:"description"`
	Rule        string     `json:"rule"`
	Audience    string     `json:"audience"`
	Now         int64      `json:"now"`
	Phase       string     `json:"phase"`
	Before      [][]string `json:"before,omitempty"`
	Token       string     `json:"token"`
	Supporting  []string   `json:"supporting,omitempty"`
	Expect      string     `json:"expect"`
}

const (
	actA   = "spiffe://example.com/agent/a"
	actB   = "spiffe://example.com/agent/b"
	actC   = "spiffe://example.com/agent/c"
	actD   = "spiffe://example.com/agent/d"
	audit  = "spiffe://example.com/system/auditor"
	actWid = "3f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
)

var (
	akA     = testkeys.EdDSA("act vectors a", "agent-a-1")
	akB     = testkeys.Deterministic(testkeys.ES256("act vectors b", "agent-b-1"))
	akC     = testkeys.EdDSA("act vectors c", "agent-c-1")
	akD     = testkeys.EdDSA("act vectors d", "agent-d-1")
	akRogue = testkeys.EdDSA("act vectors rogue", "agent-a-1")
	actNow  = time.Unix(now, 0)
)

func actTrust() []obj {
	return []obj{
		{"id": actA, "keys": []*trust.SigningKey{akA}},
		{"id": actB, "keys": []*trust.SigningKey{akB}},
		{"id": actC, "keys": []*trust.SigningKey{akC}},
		{"id": actD, "keys": []*trust.SigningKey{akD}},
	}
}

func actKeys() map[string]*trust.SigningKey {
	return map[string]*trust.SigningKey{"agent-a": akA, "agent-b": testkeys.ES256("act vectors b", "agent-b-1"), "agent-c": akC, "agent-d": akD, "rogue": akRogue}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

func id(n int) string {
	return "a0000000-0000-4000-8000-" + strings.Repeat("0", 11) + string(rune('0'+n))
}

func rootM() *act.Mandate {
	return &act.Mandate{
		Issuer: actA, Subject: actB, Audience: []string{actB}, ID: id(1), WorkflowID: actWid,
		Task: act.Task{Purpose: "prepare the quarterly report", CreatedBy: "alice@example.com", DataSensitivity: "internal"},
		Capabilities: []act.Capability{
			{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":10,"allowed_tables":["sales","costs"],"deny_columns":["ssn"]}`)},
			{Action: "write.report"},
		},
	}
}

func parsedACT(tok string) *act.Result { return must(act.ParseUnverified(tok)) }

func payloadOf(tok string) obj {
	var m obj
	if err := json.Unmarshal(parsedACT(tok).Payload, &m); err != nil {
		log.Fatal(err)
	}
	return m
}

func actHdr(k *trust.SigningKey) obj { return obj{"alg": k.Alg(), "kid": k.KeyID(), "typ": "act+jwt"} }

// reSign signs tok's payload changed by f with k.
func reSign(k *trust.SigningKey, tok string, f func(obj)) string {
	return sign(k, actHdr(k), edit(payloadOf(tok), f))
}

func actScenarios() map[string]any {
	m1 := must(act.NewMandate(akA, rootM(), actNow))
	m2 := must(act.Delegate(akB, parsedACT(m1), &act.Mandate{Subject: actC, Audience: []string{actC}, ID: id(2),
		Task:         act.Task{Purpose: "read the sales table"},
		Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":5,"allowed_tables":["sales"],"deny_columns":["ssn","salary"]}`)}},
	}, actNow))
	m3 := must(act.Delegate(akC, parsedACT(m2), &act.Mandate{Subject: actD, Audience: []string{actD}, ID: id(3),
		Task:         act.Task{Purpose: "one query"},
		Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":1,"allowed_tables":["sales"],"deny_columns":["ssn","salary"]}`)}},
	}, actNow))
	rec := func(in act.RecordInput) string {
		if in.ExecAct == "" {
			in.ExecAct = "read.data"
		}
		if in.Status == "" {
			in.Status = act.StatusCompleted
		}
		in.ExecTS = actNow.Add(2 * time.Minute)
		return must(act.NewRecord(akB, actB, parsedACT(m1), in, actNow))
	}
	r1 := rec(act.RecordInput{Pred: []string{id(9)}, InputHash: agentctx.HashBytes([]byte("query")), OutputHash: agentctx.HashBytes([]byte("rows"))})
	r3 := must(act.NewRecord(akD, actD, parsedACT(m3), act.RecordInput{ExecAct: "read.data", Status: act.StatusPartial, ExecTS: actNow.Add(time.Minute)}, actNow))
	atUse, atAudit := int64(now+60), int64(now+3600)

	v := func(rule, expect, desc, phase, aud string, at int64, tok string, sup ...string) ACTVector {
		return ACTVector{Description: desc, Rule: rule, Audience: aud, Now: at, Phase: phase, Token: tok, Supporting: sup, Expect: expect}
	}
	mandate := func(rule, expect, desc string, f func(obj)) ACTVector {
		return v(rule, expect, desc, "mandate", actB, atUse, reSign(akA, m1, f))
	}
	record := func(rule, expect, desc string, withMandate bool, f func(obj)) ACTVector {
		tok := reSign(akB, r1, f)
		if withMandate {
			return v(rule, expect, desc, "record", audit, atAudit, tok, m1)
		}
		return v(rule, expect, desc, "record", audit, atAudit, tok)
	}
	child := func(rule, expect, desc string, f func(obj)) ACTVector {
		return v(rule, expect, desc, "mandate", actC, atUse, reSign(akB, m2, f), m1)
	}
	constraintsOf := func(c string) func(obj) {
		return func(m obj) {
			var x any
			json.Unmarshal([]byte(c), &x)
			m["cap"] = []any{obj{"action": "read.data", "constraints": x}}
		}
	}
	parts := strings.Split(m1, ".")
	replayed := v("ECT-V12", "replay", "the same record presented twice", "record", audit, atAudit, r1)
	replayed.Before = [][]string{{r1}}
	return map[string]any{
		"valid-mandate":                v("ACT-M1", "valid", "root mandate A->B", "mandate", actB, atUse, m1),
		"valid-mandate-phase-any":      v("ACT-P1", "valid", "phase detected from the claims", "any", actB, atUse, m1),
		"valid-mandate-typ-media-type": v("ACT-H1", "valid", "typ application/act+jwt", "mandate", actB, atUse, sign(akA, edit(actHdr(akA), set("typ", "application/ACT+JWT")), payloadOf(m1))),
		"valid-mandate-aud-string":     mandate("ACT-M3", "valid", "aud as a string", set("aud", actB)),
		"valid-mandate-root-max-depth": mandate("ACT-D1", "valid", "root setting max_depth", set("del", obj{"depth": 0, "max_depth": 1, "chain": []any{}})),
		"valid-chain-1":                v("ACT-D5", "valid", "delegated mandate B->C with its parent", "mandate", actC, atUse, m2, m1),
		"valid-chain-2":                v("ACT-D5", "valid", "two delegations A->B->C->D", "mandate", actD, atUse, m3, m2, m1),
		"valid-record-only":            v("ACT-P3", "valid", "record without its mandate (record only)", "record", audit, atAudit, r1),
		"valid-record-with-mandate":    v("ACT-P3", "valid", "record with its mandate", "record", audit, atAudit, r1, m1),
		"valid-record-with-chain":      v("ACT-P3", "valid", "record of a delegated mandate with the chain", "record", audit, atAudit, r3, m3, m2, m1),
		"valid-record-failed":          record("ACT-R6", "valid", "failed record with err", true, func(m obj) { m["status"] = "failed"; m["err"] = obj{"code": "timeout", "message": "db slow"} }),
		"valid-record-legacy-par":      record("ACT-R2", "valid", "legacy par instead of pred", false, func(m obj) { m["par"] = m["pred"]; delete(m, "pred") }),
		"valid-record-within-skew":     record("ACT-R3", "valid", "exec_ts 59 s after exp", false, set("exec_ts", now+900+59)),
		"invalid-typ-ect":              v("ECT-V3", "invalid_typ", "an ECT given to the ACT verifier", "any", actB, atUse, sign(edA, hdr(edA), claims())),
		"invalid-typ-missing":          v("ECT-V3", "invalid_typ", "no typ", "mandate", actB, atUse, sign(akA, obj{"alg": "EdDSA", "kid": "agent-a-1"}, payloadOf(m1))),
		"alg-none":                     v("ECT-V4", "alg_not_allowed", "unsecured mandate", "mandate", actB, atUse, jws.EncodeSegment([]byte(`{"alg":"none","kid":"agent-a-1","typ":"act+jwt"}`))+"."+parts[1]+"."),
		"bad-signature":                v("ECT-V6", "bad_signature", "signed by an untrusted key with a trusted kid", "mandate", actB, atUse, reSign(akRogue, m1, func(obj) {})),
		"unknown-key":                  v("TR-7a", "unknown_key", "mandate signed by its subject", "mandate", actB, atUse, reSign(akB, m1, func(obj) {})),
		"missing-iss":                  mandate("ACT-M1", "missing_claim", "no iss", del("iss")),
		"missing-sub":                  mandate("ACT-M2", "missing_claim", "no sub", del("sub")),
		"missing-aud":                  mandate("ACT-M3", "missing_claim", "no aud", del("aud")),
		"missing-exp":                  mandate("ACT-M4", "missing_claim", "no exp", del("exp")),
		"missing-jti":                  mandate("ACT-M5", "missing_claim", "no jti", del("jti")),
		"missing-task":                 mandate("ACT-M7", "missing_claim", "no task", del("task")),
		"missing-task-purpose":         mandate("ACT-M7", "missing_claim", "task without purpose", set("task", obj{"created_by": "alice"})),
		"missing-cap":                  mandate("ACT-M8", "missing_claim", "no cap", del("cap")),
		"invalid-cap-empty":            mandate("ACT-M8", "invalid_claim", "cap is empty", set("cap", []any{})),
		"invalid-cap-duplicate":        mandate("ACT-M8", "invalid_claim", "an action listed twice", set("cap", []any{obj{"action": "a"}, obj{"action": "a"}})),
		"invalid-action-grammar":       mandate("ACT-A1", "invalid_claim", "action with upper case", set("cap", []any{obj{"action": "Read.Data"}})),
		"invalid-exp-before-iat":       mandate("ACT-M4", "invalid_claim", "exp equal to iat", set("exp", now)),
		"invalid-jti":                  mandate("ACT-M5", "invalid_claim", "jti not a UUID", set("jti", "task-1")),
		"invalid-sensitivity":          mandate("ACT-M7", "invalid_claim", "unknown data_sensitivity", set("task", obj{"purpose": "p", "data_sensitivity": "secret"})),
		"expired-mandate":              mandate("ECT-V8", "expired", "mandate expired 61 s ago", func(m obj) { m["iat"] = now - 1000; m["exp"] = now - 1 }),
		"audience-mismatch":            v("ECT-V10", "audience_mismatch", "mandate presented to C", "mandate", actC, atUse, m1),
		"phase-partial":                mandate("ACT-P1", "phase_error", "exec_act without exec_ts and status", set("exec_act", "read.data")),
		"phase-record-as-mandate":      v("ACT-V1", "phase_error", "record where a mandate is expected", "mandate", actB, now+180, r1),
		"phase-mandate-as-record":      v("ACT-V1", "phase_error", "mandate where a record is expected", "record", actB, atUse, m1),
		"delegation-depth":             child("ACT-D1", "delegation_depth", "depth 1 with max_depth 0", func(m obj) { m["del"].(obj)["max_depth"] = 0 }),
		"delegation-missing-parent":    v("ACT-D5", "delegation_broken", "delegated mandate without its parent", "mandate", actC, atUse, m2),
		"delegation-altered-parent":    v("ACT-D5", "delegation_broken", "parent changed after the child was issued", "mandate", actC, atUse, m2, reSign(akA, m1, set("task", obj{"purpose": "other"}))),
		"delegation-wrong-order":       v("ACT-D5", "delegation_broken", "parents in the wrong order", "mandate", actD, atUse, m3, m1, m2),
		"delegation-wrong-issuer":      v("ACT-D2", "delegation_broken", "child issued by A, the parent authorizes B", "mandate", actC, atUse, reSign(akA, m2, set("iss", actA)), m1),
		"escalation-action":            child("ACT-D3", "privilege_escalation", "child adds an action", set("cap", []any{obj{"action": "delete.data"}})),
		"escalation-exp":               child("ACT-D3", "privilege_escalation", "child outlives its parent", set("exp", now+7200)),
		"escalation-max-calls":         child("ACT-D4", "privilege_escalation", "max_calls raised", constraintsOf(`{"max_calls":50,"allowed_tables":["sales"],"deny_columns":["ssn","salary"]}`)),
		"escalation-allowed":           child("ACT-D4", "privilege_escalation", "allowed_ list widened", constraintsOf(`{"max_calls":5,"allowed_tables":["sales","hr"],"deny_columns":["ssn","salary"]}`)),
		"escalation-deny":              child("ACT-D4", "privilege_escalation", "deny_ list narrowed", constraintsOf(`{"max_calls":5,"allowed_tables":["sales"],"deny_columns":[]}`)),
		"record-capability-violation":  record("ACT-R1", "capability_violation", "exec_act outside cap", false, set("exec_act", "delete.data")),
		"record-exec-ts-before-iat":    record("ACT-R3", "invalid_claim", "exec_ts before iat", false, set("exec_ts", now-5)),
		"record-exec-ts-after-exp":     record("ACT-R3", "expired", "exec_ts 61 s after exp", false, set("exec_ts", now+900+61)),
		"record-status":                record("ACT-R4", "invalid_claim", "unknown status", false, set("status", "done")),
		"record-failed-without-err":    record("ACT-R6", "missing_claim", "failed record without err", false, set("status", "failed")),
		"record-completed-with-err":    record("ACT-R6", "invalid_claim", "completed record with err", false, set("err", obj{"code": "x"})),
		"record-missing-pred":          record("ACT-R2", "missing_claim", "record without pred", false, del("pred")),
		"record-mandate-mismatch":      record("ACT-P3", "mandate_mismatch", "record widening its cap", true, set("cap", []any{obj{"action": "read.data"}, obj{"action": "write.report"}, obj{"action": "delete.data"}})),
		"record-signed-by-issuer":      v("TR-7a", "unknown_key", "record signed by the mandate's iss", "record", audit, atAudit, reSign(akA, r1, func(obj) {})),
		"record-bad-mandate":           v("ECT-V6", "bad_signature", "record whose mandate was tampered with", "record", audit, atAudit, r1, parts[0]+"."+parts[1]+"."+strings.Split(reSign(akA, m1, set("x", 1)), ".")[2]),
		"record-replay":                replayed,
	}
}
