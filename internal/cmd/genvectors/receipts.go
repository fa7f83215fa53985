package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/sqlite"
	"github.com/agentctx/agentctx/trust"
)

// receiptTokens are the tasks of the receipts ledger: two appended in one
// batch (checkpoint of size 2), the third alone (size 3).
var receiptTokens = []struct{ id, act string }{
	{"2d9e7f60-7b9c-4e30-9f77-0d0e2b6c4033", "plan"},
	{"3e0f8071-8c0d-4f41-8088-1e1f3c7d5144", "fetch"},
	{"4f108182-9d1e-4052-9199-2f204d8e6255", "merge"},
}

// writeReceipts writes under dir a small ledger's receipts in the three
// encodings of SVC-6a, its public key in three forms, its checkpoints and
// a COSE consistency receipt: deterministic (the ledger's Ed25519 key comes
// from a fixed seed, the clock is fixed), so other implementations can
// check their decoders and verifiers against them.
func writeReceipts(dir string) {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "genvectors")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	st, err := sqlite.Open(filepath.Join(tmp, "ledger.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	seed := sha256.Sum256([]byte("agentctx test key: vectors ledger"))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), ledgerID)
	if err != nil {
		log.Fatal(err)
	}
	if err := ledger.Create(ctx, st, ledgerID, vkey); err != nil {
		log.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		log.Fatal(err)
	}
	clock := time.Unix(now, 0)
	ts := trust.NewSet()
	if err := ts.Add(trust.Binding{ID: issA}, edA.Public()); err != nil {
		log.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Config{Store: st, Signer: signer, Trust: ts, Clock: func() time.Time { return clock }})
	if err != nil {
		log.Fatal(err)
	}
	var toks []string
	for i, t := range receiptTokens {
		c := &ect.Claims{ID: t.id, Issuer: issA, Audience: []string{ledgerID}, WorkflowID: wid1, ExecAct: t.act}
		if i > 0 {
			c.Pred = []string{receiptTokens[0].id}
		}
		tok, err := ect.Create(edA, c, time.Unix(now, 0))
		if err != nil {
			log.Fatal(err)
		}
		toks = append(toks, tok)
	}
	for _, batch := range [][]string{toks[:2], toks[2:]} {
		var in []ledger.Input
		for _, t := range batch {
			in = append(in, ledger.Input{Token: t})
		}
		outs, err := l.Append(ctx, in)
		if err != nil {
			log.Fatal(err)
		}
		for _, o := range outs {
			if o.Err != nil {
				log.Fatal(o.Err)
			}
		}
		clock = clock.Add(1250 * time.Millisecond)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	must := func(b []byte, err error) []byte {
		if err != nil {
			log.Fatal(err)
		}
		return b
	}
	k, err := ledger.ParseVerifierKey(vkey)
	if err != nil {
		log.Fatal(err)
	}
	write("ledger.vkey", []byte(vkey+"\n"))
	write("ledger.key", []byte(skey+"\n"))
	write("ledger.jwk", append(must(json.MarshalIndent(k.JWK(), "", "  ")), '\n'))
	write("ledger.cose-key", k.COSEKey())
	trustFile := must(json.MarshalIndent(obj{"issuers": []obj{{"id": issA, "keys": []json.RawMessage{json.RawMessage(must(trust.PublicJWK(edA.Public())))}}}}, "", "  "))
	write("trust.json", append(trustFile, '\n'))
	for _, size := range []uint64{2, 3} {
		write(fmt.Sprintf("checkpoint.%d", size), must(st.Checkpoint(ctx, size)))
	}
	for i, tok := range toks {
		r, err := l.Prove(ctx, uint64(i), 0)
		if err != nil {
			log.Fatal(err)
		}
		write(fmt.Sprintf("entry-%d.jwt", i), []byte(tok+"\n"))
		write(fmt.Sprintf("entry-%d.receipt.json", i), append(must(json.MarshalIndent(r, "", "  ")), '\n'))
		write(fmt.Sprintf("entry-%d.tlog-proof", i), must(ledger.TLogProof(r)))
		write(fmt.Sprintf("entry-%d.receipt.cose", i), must(l.COSEReceipt(ctx, r)))
	}
	write("consistency-2-3.cose", must(l.COSEConsistency(ctx, 2, 3)))
	write("README.md", []byte(receiptsReadme))
	fmt.Printf("wrote the receipt vectors to %s\n", dir)
}

const receiptsReadme = `# Receipt vectors (SVC-6a)

A ledger of three ECTs (entries 0 and 1 appended in one batch, checkpoint of size 2; entry 2 alone,
size 3), with every receipt in the three encodings of SVC-6a. Written by
` + "`go run ./internal/cmd/genvectors`" + ` (deterministic: the ledger's Ed25519 key comes from a fixed
seed, the clock is fixed); ` + "`TestGenerated`" + ` fails when these files differ from what it writes.

- ` + "`ledger.vkey`" + `: the ledger's C2SP note verifier key (` + "`name+hash+base64(0x01 || key)`" + `); ` + "`ledger.jwk`" + `
  the same key as an RFC 8037 JWK, ` + "`ledger.cose-key`" + ` as a CBOR COSE_Key; ` + "`ledger.key`" + ` the signer
  key (a test key: never use it).
- ` + "`trust.json`" + `: the trust file of the agent that signed the tokens.
- ` + "`checkpoint.2`" + `, ` + "`checkpoint.3`" + `: the signed C2SP checkpoints.
- ` + "`entry-N.jwt`" + `: the token of entry N; ` + "`entry-N.receipt.json`" + ` its LED-7 receipt (at size 3),
  ` + "`entry-N.tlog-proof`" + ` the C2SP tlog-proof@v1 (its ` + "`extra`" + ` line is the leaf data before the token:
  ` + "`agentctx-ledger-v1\\n<kind>\\n<received ms>\\n`" + `), ` + "`entry-N.receipt.cose`" + ` the RFC 9942 COSE receipt.
- ` + "`consistency-2-3.cose`" + `: the COSE consistency receipt from size 2 to size 3.

A COSE receipt: tag 18; protected ` + "`{1: -8, 4: kid, 15: {1: ledger id}, 395: 1}`" + ` where kid is the RFC
9679 COSE Key Thumbprint (SHA-256) of the ledger key; unprotected ` + "`{396: {-1: [bstr .cbor [tree_size,\nleaf_index, [path...]]]}, -65537: kind, -65538: received ms}`" + `; payload nil (detached: the root at
tree_size). To verify: leaf = SHA-256(0x00 || "agentctx-ledger-v1\n" || kind || "\n" || received ||
"\n" || token), root from the RFC 9162 inclusion proof, then the Ed25519 signature of the COSE
Sig_structure with the root as payload.
`
