package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/sqlite"
	"github.com/agentctx/agentctx/trust"
)

// cmdDemo runs an in-process workflow with a fork and a join: agent A plans
// (ECT); B researches after A (ECT); A gives C a mandate and C queries the
// database under it (ACT mandate and record); D summarizes after B and C
// (ECT, the join). Every token is verified by its receiver, appended to an
// embedded ledger, its receipt checked offline with the ledger's public key
// alone; then the ledger is audited and the workflow's DAG printed.
func cmdDemo(e *env, args []string) error {
	fs := newFlags(e, "demo", "demo [--dir DIR] [--ledger FILE]")
	dirFlag := fs.String("dir", "", "keep everything in DIR (created, must be new or empty): the agents' keys, trust.json, the ledger and its keys, the tokens")
	ledgerPath := fs.String("ledger", "", "keep only the ledger, in this SQLite file (default: a temporary directory)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	keep := *dirFlag
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			return fileError("dir", keep, err)
		}
		if ents, _ := os.ReadDir(keep); len(ents) > 0 {
			return usagef("give a new or empty --dir", "--dir %s is not empty", describeArg(keep))
		}
		*ledgerPath = filepath.Join(keep, "ledger.db")
	}
	write := func(name string, data []byte, mode os.FileMode) error {
		if keep == "" {
			return nil
		}
		if err := os.WriteFile(filepath.Join(keep, name), data, mode); err != nil {
			return failf("writing %s: %v", name, err)
		}
		return nil
	}
	const (
		idA, idB, idC, idD = "spiffe://example.com/agent/a", "spiffe://example.com/agent/b", "spiffe://example.com/agent/c", "spiffe://example.com/agent/d"
		ledgerID           = "spiffe://example.com/system/ledger"
	)
	ctx := context.Background()
	say := func(format string, args ...any) { fmt.Fprintf(e.stdout, format+"\n", args...) }
	keys := map[string]*trust.SigningKey{}
	trusted := trust.NewSet()
	for i, id := range []string{idA, idB, idC, idD} {
		alg := []string{"ES256", "EdDSA"}[i%2]
		k, err := trust.GenerateKey(alg, fmt.Sprintf("agent-%c-1", 'a'+i))
		if err != nil {
			return failf("%v", err)
		}
		keys[id] = k
		if err := trusted.Add(trust.Binding{ID: id}, k.Public()); err != nil {
			return failf("%v", err)
		}
		if keep != "" {
			j, err := k.MarshalJWK()
			if err != nil {
				return failf("%v", err)
			}
			if err := write(fmt.Sprintf("agent-%c.jwk", 'a'+i), append(j, '\n'), 0o600); err != nil {
				return err
			}
		}
	}
	if keep != "" {
		var entries []string
		for _, id := range []string{idA, idB, idC, idD} {
			pub, err := trust.PublicJWK(keys[id].Public())
			if err != nil {
				return failf("%v", err)
			}
			entries = append(entries, fmt.Sprintf(`{"id":%q,"keys":[%s]}`, id, pub))
		}
		if err := write("trust.json", []byte(`{"issuers":[`+strings.Join(entries, ",")+"]}\n"), 0o644); err != nil {
			return err
		}
	}

	// The embedded ledger.
	path := *ledgerPath
	if path == "" {
		dir, err := os.MkdirTemp("", "agentctx-demo-")
		if err != nil {
			return failf("%v", err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "ledger.db")
	}
	store, err := sqlite.Open(path)
	if err != nil {
		return failf("%v", err)
	}
	defer store.Close()
	skey, vkey, err := ledger.GenerateKey(ledgerID)
	if err != nil {
		return failf("%v", err)
	}
	if err := ledger.Create(ctx, store, ledgerID, vkey); err != nil {
		return failf("%v (use a new --ledger file)", err)
	}
	if err := write("ledger.key", []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := write("ledger.vkey", []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return failf("%v", err)
	}
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Trust: trusted, Clock: clock})
	if err != nil {
		return failf("%v", err)
	}
	wid := ect.NewID()
	say("== workflow %s, ledger %s (%s)", wid, ledgerID, path)

	step := func(at time.Duration) time.Time { return now.Add(at) }
	newECT := func(from string, to []string, execAct string, at time.Duration, pred ...string) (string, *ect.Claims, error) {
		c := &ect.Claims{Issuer: from, Audience: append(to, ledgerID), WorkflowID: wid, ExecAct: execAct, Pred: pred,
			InputHash: agentctx.HashBytes([]byte(execAct + " input")), OutputHash: agentctx.HashBytes([]byte(execAct + " output"))}
		tok, err := ect.Create(keys[from], c, step(at))
		return tok, c, err
	}
	verifyAs := func(audience, tok string) (*ect.Result, error) {
		v, err := ect.NewVerifier(ect.Config{Trust: trusted, Audience: audience, Clock: clock})
		if err != nil {
			return nil, err
		}
		return v.Verify(ctx, tok)
	}

	// A plans (the root), then the work forks to B and C.
	tokA, cA, err := newECT(idA, []string{idB, idC}, "plan_report", -4*time.Second)
	if err != nil {
		return failf("agent A: %v", err)
	}
	if _, err := verifyAs(idB, tokA); err != nil {
		return failf("agent B refused A's ECT: %v", err)
	}
	say("A  ECT   plan_report       %s (root)", cA.ID)
	tokB, cB, err := newECT(idB, []string{idD}, "research", -3*time.Second, cA.ID)
	if err != nil {
		return failf("agent B: %v", err)
	}
	say("B  ECT   research          %s after A", cB.ID)

	// A mandates C to query the database; C executes and records it (ACT).
	mandate, err := act.NewMandate(keys[idA], &act.Mandate{Issuer: idA, Subject: idC, Audience: []string{idC}, WorkflowID: wid,
		Task:         act.Task{Purpose: "figures for the report", CreatedBy: "alice@example.com", DataSensitivity: "internal"},
		Capabilities: []act.Capability{{Action: "query.db", Constraints: []byte(`{"max_calls":3,"allowed_tables":["sales"]}`)}},
	}, step(-4*time.Second))
	if err != nil {
		return failf("mandate: %v", err)
	}
	av, err := act.NewVerifier(act.Config{Trust: trusted, Audience: idC, Clock: clock})
	if err != nil {
		return failf("%v", err)
	}
	mres, err := av.VerifyMandate(ctx, mandate, nil)
	if err != nil {
		return failf("agent C refused its mandate: %v", err)
	}
	if _, err := mres.Authorize("query.db", nil); err != nil {
		return failf("agent C may not query: %v", err)
	}
	record, err := act.NewRecord(keys[idC], idC, mres, act.RecordInput{ExecAct: "query.db", Status: act.StatusCompleted,
		Pred: []string{cA.ID}, ExecTS: step(-2 * time.Second), InputHash: agentctx.HashBytes([]byte("select ...")), OutputHash: agentctx.HashBytes([]byte("rows"))}, now)
	if err != nil {
		return failf("agent C: %v", err)
	}
	say("C  ACT   query.db          %s mandate from A, record by C, after A", mres.Mandate.ID)

	// D joins B's and C's work.
	tokD, cD, err := newECT(idD, nil, "summarize", -time.Second, cB.ID, mres.Mandate.ID)
	if err != nil {
		return failf("agent D: %v", err)
	}
	say("D  ECT   summarize         %s after B and C (join)", cD.ID)

	// Everything goes to the ledger in one group commit.
	toks := []string{tokA, tokB, mandate, record, tokD}
	if err := write("tokens.txt", []byte(strings.Join(toks, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	inputs := make([]ledger.Input, len(toks))
	for i, t := range toks {
		inputs[i] = ledger.Input{Token: t}
	}
	outs, err := l.Append(ctx, inputs)
	if err != nil {
		return failf("ledger: %v", err)
	}
	say("\n== ledger receipts, each checked offline with the ledger's public key only")
	for i, o := range outs {
		if o.Err != nil {
			return failf("ledger refused token %d: %s", i, describe(o.Err))
		}
		if err := ledger.VerifyReceipt(vkey, o.Receipt, []byte(toks[i])); err != nil {
			return failf("receipt %d does not verify: %v", i, err)
		}
		say("  #%d %-11s tree %d, proof of %d hashes: verified", o.Receipt.Index, o.Receipt.Kind, o.Receipt.TreeSize, len(o.Receipt.InclusionProof))
	}
	// A replay is answered with the original receipt; a tampered token is refused.
	again, err := l.Append(ctx, []ledger.Input{{Token: tokB}})
	if err != nil || again[0].Err != nil || again[0].Receipt.Index != outs[1].Receipt.Index {
		return failf("re-append was not idempotent: %v", err)
	}
	say("  re-append of B's ECT: the original receipt #%d", again[0].Receipt.Index)
	bad, err := l.Append(ctx, []ledger.Input{{Token: tokD[:len(tokD)-4] + "AAAA"}})
	if err != nil || bad[0].Err == nil {
		return failf("tampered token was accepted: %v", err)
	}
	say("  tampered copy of D's ECT: refused (%s)", agentctx.CodeOf(bad[0].Err))

	rep, err := l.Audit(ctx)
	if err != nil {
		return failf("audit: %v", err)
	}
	cp, _ := l.Checkpoint(ctx)
	say("\n== audit: %s, %s, every token re-verified: intact\n%s", plural(rep.Size, "entry", "entries"), plural(uint64(rep.Checkpoints), "checkpoint", "checkpoints"), cp)
	g, err := l.Workflow(ctx, wid)
	if err != nil {
		return failf("%v", err)
	}
	say("== DAG of workflow %s", wid)
	fmt.Fprint(e.stdout, g.Text())
	if keep != "" {
		say("\n== kept in %s: agent-a..d.jwk, trust.json, ledger.db, ledger.key, ledger.vkey, tokens.txt; continue with\n"+
			"  agentctx ledger verify --db %s --trust %s --ledger-key-file %s\n  agentctx ledger workflow --db %s --wid %s --format text",
			keep, filepath.Join(keep, "ledger.db"), filepath.Join(keep, "trust.json"), filepath.Join(keep, "ledger.vkey"), filepath.Join(keep, "ledger.db"), wid)
	}
	return nil
}
