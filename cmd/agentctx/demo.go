package main

import (
	"context"
	"fmt"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/trust"
)

// cmdDemo runs an in-process two-agent workflow: agent A records its task in
// an ECT; agent B verifies it, does its own task and records it with A's task
// as predecessor; the workflow's DAG is printed.
func cmdDemo(e *env, args []string) error {
	fs := newFlags(e, "demo", "demo")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	const (
		idA    = "spiffe://example.com/agent/a"
		idB    = "spiffe://example.com/agent/b"
		idC    = "spiffe://example.com/agent/c"
		ledger = "spiffe://example.com/system/ledger"
	)
	keyA, err := trust.GenerateKey("ES256", "agent-a-1")
	if err != nil {
		return failf("%v", err)
	}
	keyB, err := trust.GenerateKey("EdDSA", "agent-b-1")
	if err != nil {
		return failf("%v", err)
	}
	trusted := trust.NewSet()
	if err := trusted.Add(trust.Binding{ID: idA}, keyA.Public()); err != nil {
		return failf("%v", err)
	}
	if err := trusted.Add(trust.Binding{ID: idB}, keyB.Public()); err != nil {
		return failf("%v", err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	ctx := context.Background()
	wid := ect.NewID()
	say := func(format string, args ...any) { fmt.Fprintf(e.stdout, format+"\n", args...) }

	say("== workflow %s", wid)
	// Agent A: a root task.
	specIn, specOut := []byte("draft spec v3"), []byte("review: 2 findings")
	tokA, err := ect.Create(keyA, &ect.Claims{
		Issuer: idA, Audience: []string{idB, ledger}, WorkflowID: wid, ExecAct: "review_spec",
		InputHash: agentctx.HashBytes(specIn), OutputHash: agentctx.HashBytes(specOut),
	}, now)
	if err != nil {
		return failf("agent A: %v", err)
	}
	say("agent A (%s, ES256) recorded its task:\n  %s", idA, tokA)

	// Agent B receives A's ECT with the request and verifies it.
	verifierB, err := ect.NewVerifier(ect.Config{Trust: trusted, Audience: idB, Clock: clock})
	if err != nil {
		return failf("%v", err)
	}
	resA, err := verifierB.Verify(ctx, tokA)
	if err != nil {
		return failf("agent B refused A's ECT: %v", err)
	}
	say("agent B verified A's ECT: L%d, jti %s, exec_act %s", resA.Level, resA.Claims.ID, resA.Claims.ExecAct)

	// Agent B does its task and records it, after A's.
	tokB, err := ect.Create(keyB, &ect.Claims{
		Issuer: idB, Audience: []string{idC, ledger}, WorkflowID: wid, ExecAct: "summarize_review",
		Pred: []string{resA.Claims.ID}, InputHash: agentctx.HashBytes(specOut), OutputHash: agentctx.HashBytes([]byte("summary")),
	}, now)
	if err != nil {
		return failf("agent B: %v", err)
	}
	say("agent B (%s, EdDSA) recorded its task:\n  %s", idB, tokB)

	// Agent C checks B's ECT; a replayed copy is refused.
	verifierC, err := ect.NewVerifier(ect.Config{Trust: trusted, Audience: idC, Clock: clock})
	if err != nil {
		return failf("%v", err)
	}
	resB, err := verifierC.Verify(ctx, tokB)
	if err != nil {
		return failf("agent C refused B's ECT: %v", err)
	}
	say("agent C verified B's ECT: L%d, pred %v", resB.Level, resB.Claims.Pred)
	if _, err := verifierC.Verify(ctx, tokB); agentctx.CodeOf(err) == agentctx.CodeReplay {
		say("agent C refused a replayed copy of B's ECT: %s", agentctx.CodeOf(err))
	} else {
		return failf("replayed ECT was not refused: %v", err)
	}

	say("\n== DAG of workflow %s", wid)
	for _, r := range []*ect.Result{resA, resB} {
		c := r.Claims
		pred := "root"
		if len(c.Pred) > 0 {
			pred = fmt.Sprintf("after %v", c.Pred)
		}
		say("  %s  %-18s by %s (%s)", c.ID, c.ExecAct, c.Issuer, pred)
	}
	say("  edge: %s -> %s", resA.Claims.ID, resB.Claims.ID)
	return nil
}
