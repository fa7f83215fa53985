package act_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/dag"
	"github.com/agentctx/agentctx/trust"
)

// TestRecordIsNeverAMandate asserts ACT-P3a and ACT-V3: a record verified
// without its mandate carries no mandate, and no result but a mandate
// verified for use authorizes anything.
func TestRecordIsNeverAMandate(t *testing.T) {
	ctx := context.Background()
	m := issue(t, keyA, rootMandate())
	rec, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: now.Add(time.Second)}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, phase := range []act.Phase{act.PhaseRecord, act.PhaseDetect} {
		res, err := verifier(t, "auditor", now.Add(2*time.Second)).Verify(ctx, rec, nil, phase)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("ACT-P3a/record only has no mandate/"+phase.String(), func(t *testing.T) {
			if res.Mandate != nil || res.MandateVerified || res.Record == nil || res.Record.Mandate.Subject != idB {
				t.Fatalf("record-only result: mandate %v verified %v", res.Mandate, res.MandateVerified)
			}
			_, err := res.Authorize("read.data", nil)
			wantCode(t, err, agentctx.CodePhaseError)
		})
	}
	t.Run("ACT-P3a/record with its mandate does not authorize", func(t *testing.T) {
		res, err := verifier(t, "auditor", now.Add(2*time.Second)).Verify(ctx, rec, []string{m}, act.PhaseRecord)
		if err != nil || !res.MandateVerified || res.Mandate == nil || res.Mandate.Issuer != idA {
			t.Fatalf("%v %+v", err, res)
		}
		_, err = res.Authorize("read.data", nil)
		wantCode(t, err, agentctx.CodePhaseError)
	})
	t.Run("ACT-V3/unverified mandate does not authorize", func(t *testing.T) {
		_, err := parse(t, m).Authorize("read.data", nil)
		wantCode(t, err, agentctx.CodePhaseError)
		var zero act.Result
		_, err = zero.Authorize("read.data", nil)
		wantCode(t, err, agentctx.CodePhaseError)
	})
	t.Run("ACT-V3/audit-verified mandate does not authorize", func(t *testing.T) {
		res, err := verifier(t, "auditor", now).VerifyAudit(ctx, m, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		_, err = res.Authorize("read.data", nil)
		wantCode(t, err, agentctx.CodePhaseError)
	})
	t.Run("ACT-V3/zero phase is refused", func(t *testing.T) {
		_, err := verifier(t, idB, now).Verify(ctx, m, nil, act.Phase(0))
		wantCode(t, err, agentctx.CodePhaseError)
		_, errs := verifier(t, idB, now).VerifyBatch(ctx, []string{m}, nil, act.Phase(0), 1)
		wantCode(t, errs[0], agentctx.CodePhaseError)
	})
	t.Run("ACT-V3/mandate verified for use authorizes", func(t *testing.T) {
		res, err := verifier(t, idB, now).Verify(ctx, m, nil, act.PhaseDetect)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Authorize("read.data", nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOversightAttenuates asserts ACT-D4a: Delegate keeps the parent's
// oversight, and a verifier refuses a chain whose child drops it.
func TestOversightAttenuates(t *testing.T) {
	ctx := context.Background()
	m1 := issue(t, keyA, rootMandate())
	// B delegates approve.release to itself without oversight.
	child := &act.Mandate{Subject: idB, Audience: []string{idB}, Task: act.Task{Purpose: "release"},
		Capabilities: []act.Capability{{Action: "approve.release"}}}
	m2, err := act.Delegate(keyB, parse(t, m1), child, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ACT-D4a/Delegate keeps the approval", func(t *testing.T) {
		o := parse(t, m2).Mandate.Oversight
		if o == nil || len(o.ApprovalRequired) != 1 || o.ApprovalRequired[0] != "approve.release" || o.Approver != "bob@example.com" {
			t.Fatalf("oversight %+v", o)
		}
		res, err := verifier(t, idB, now).VerifyMandate(ctx, m2, []string{m1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = res.Authorize("approve.release", nil)
		wantCode(t, err, agentctx.CodeApprovalRequired)
	})
	drop := func(mod func(map[string]any)) string { return forge(t, keyB, m2, mod) }
	for name, tok := range map[string]string{
		"dropped":           drop(del("oversight")),
		"action dropped":    drop(set("oversight", map[string]any{"approver": "bob@example.com"})),
		"approver replaced": drop(set("oversight", map[string]any{"approval_required": []string{"approve.release"}, "approver": "mallory"})),
	} {
		t.Run("ACT-D4a/verifier refuses oversight "+name, func(t *testing.T) {
			_, err := verifier(t, idB, now).VerifyMandate(ctx, tok, []string{m1})
			wantCode(t, err, agentctx.CodePrivilegeEscalation)
			var e *agentctx.Error
			if !asErr(err, &e) || e.Rule != "ACT-D4a" {
				t.Fatalf("rule %v", err)
			}
		})
	}
	t.Run("ACT-D4a/Delegate refuses another approver", func(t *testing.T) {
		c := *child
		c.Oversight = &act.Oversight{Approver: "mallory"}
		_, err := act.Delegate(keyB, parse(t, m1), &c, now)
		wantCode(t, err, agentctx.CodePrivilegeEscalation)
	})
	t.Run("ACT-D4a/a child may add actions", func(t *testing.T) {
		c := &act.Mandate{Subject: idC, Audience: []string{idC}, Task: act.Task{Purpose: "p"},
			Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":1,"allowed_tables":["sales"],"deny_columns":["ssn"],"region":"eu"}`)}},
			Oversight:    &act.Oversight{ApprovalRequired: []string{"read.data"}}}
		tok, err := act.Delegate(keyB, parse(t, m1), c, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifier(t, idC, now).VerifyMandate(ctx, tok, []string{m1}); err != nil {
			t.Fatal(err)
		}
	})
}

// ExampleResult_Authorize shows a tool server enforcing a delegated
// mandate: it verifies the mandate for use, asks for the action, and
// refuses any constraint key it does not understand (ACT-D4: a child may
// add keys, so failing closed is the enforcer's job).
func ExampleResult_Authorize() {
	ctx := context.Background()
	ts := trust.NewSet()
	_ = ts.Add(trust.Binding{ID: idA}, keyA.Public())
	v, _ := act.NewVerifier(act.Config{Trust: ts, Audience: idB, Clock: func() time.Time { return now }})
	tok, _ := act.NewMandate(keyA, &act.Mandate{Issuer: idA, Subject: idB, Audience: []string{idB}, Task: act.Task{Purpose: "report"},
		Capabilities: []act.Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":5,"max_rows":100}`)}}}, now)
	res, err := v.VerifyMandate(ctx, tok, nil)
	if err != nil {
		fmt.Println("refused:", agentctx.CodeOf(err))
		return
	}
	c, err := res.Authorize("read.data", nil)
	if err != nil {
		fmt.Println("refused:", agentctx.CodeOf(err))
		return
	}
	var cons map[string]json.RawMessage
	_ = json.Unmarshal(c.Constraints, &cons)
	understood := map[string]bool{"max_calls": true}
	for k := range cons {
		if !understood[k] {
			fmt.Printf("refused: constraint %q is not understood here\n", k)
			return
		}
	}
	fmt.Println("allowed")
	// Output: refused: constraint "max_rows" is not understood here
}

type stubDAG struct {
	err     error
	missing []string
}

func (s *stubDAG) Check(context.Context, dag.Node) (*dag.Verdict, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &dag.Verdict{Missing: s.missing}, nil
}

// TestRecordReplayAfterDAG covers ACT-V5 (ECT-V12 applied to records): a
// record refused by the DAG check is not remembered, and in partial mode the
// result lists what is missing (DAG-2).
func TestRecordReplayAfterDAG(t *testing.T) {
	ctx := context.Background()
	m := issue(t, keyA, rootMandate())
	rec, err := act.NewRecord(keyB, idB, parse(t, m), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, Pred: []string{jtiP}, ExecTS: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	d := &stubDAG{err: agentctx.Errorf(agentctx.CodeDAGUnknownPred, "DAG-2", "pred", "unknown")}
	v, err := act.NewVerifier(act.Config{Trust: trustSet(t), Audience: "auditor", Clock: func() time.Time { return now }, DAG: d})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.VerifyRecord(ctx, rec, nil)
	wantCode(t, err, agentctx.CodeDAGUnknownPred)
	d.err, d.missing = nil, []string{jtiP}
	res, err := v.VerifyRecord(ctx, rec, nil)
	if err != nil || !res.Partial || len(res.Missing) != 1 {
		t.Fatalf("ACT-V5: after the DAG refusal: %v %+v", err, res)
	}
	_, err = v.VerifyRecord(ctx, rec, nil)
	wantCode(t, err, agentctx.CodeReplay)
}
