// Command benchgen writes the input of the verification comparison in
// bench/compare and of the ledger append measurement: N ECTs of one
// workflow, a chain (each names the previous as predecessor), signed
// alternately with an ES256 and an EdDSA key, one per line, issued now with a
// one-hour lifetime, audience agent b and the ledger, plus the trust file for
// agentctx and the public JWKs for the other implementations.
//
//	go run ./internal/cmd/benchgen -n 20000 -out DIR
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

func main() {
	n := flag.Int("n", 20000, "number of tokens")
	out := flag.String("out", ".", "output directory")
	flag.Parse()
	const iss, aud = "spiffe://example.com/agent/a", "spiffe://example.com/agent/b"
	keys := []*trust.SigningKey{testkeys.ES256("bench", "bench-es256"), testkeys.EdDSA("bench", "bench-eddsa")}
	now := time.Now()
	wid := ect.NewID()
	var b strings.Builder
	var pred []string // the first task is the root; each next one follows the previous
	for i := 0; i < *n; i++ {
		c := &ect.Claims{
			Issuer: iss, Audience: []string{aud, "spiffe://example.com/system/ledger"}, WorkflowID: wid,
			ExecAct: "review_spec", Pred: pred, Expiry: now.Add(time.Hour),
			InputHash: agentctx.HashBytes([]byte{byte(i)}), OutputHash: agentctx.HashBytes([]byte{byte(i + 1)}),
		}
		tok, err := ect.Create(keys[i%2], c, now)
		if err != nil {
			log.Fatal(err)
		}
		pred = []string{c.ID}
		b.WriteString(tok)
		b.WriteByte('\n')
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	write("tokens.txt", []byte(b.String()))
	var jwks []json.RawMessage
	for _, k := range keys {
		j, err := trust.PublicJWK(k.Public())
		if err != nil {
			log.Fatal(err)
		}
		jwks = append(jwks, j)
	}
	tf, _ := json.Marshal(map[string]any{"issuers": []any{map[string]any{"id": iss, "keys": jwks}}})
	write("trust.json", tf)
	js, _ := json.Marshal(map[string]any{"keys": jwks})
	write("jwks.json", js)
}
