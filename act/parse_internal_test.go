package act

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/testkeys"
)

// BenchmarkParse measures the parsing share of verification (strict JWS
// parse and every ACT claim, no signature) for a mandate at delegation
// depth 3, the largest token of BenchmarkVerifyChain3.
func BenchmarkParse(b *testing.B) {
	now := time.Unix(1767225600, 0)
	keys := []string{"a", "b", "c", "d", "e"}
	k := func(i int) string { return "spiffe://ex.com/" + keys[i] }
	tok, err := NewMandate(testkeys.EdDSA("p0", "k0"), &Mandate{Issuer: k(0), Subject: k(1), Audience: []string{k(1)},
		Task: Task{Purpose: "p"}, Capabilities: []Capability{{Action: "read.data", Constraints: json.RawMessage(`{"max_calls":5,"allowed_tables":["a","b"],"deny_columns":["x"]}`)}}}, now)
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		p, err := ParseUnverified(tok)
		if err != nil {
			b.Fatal(err)
		}
		tok, err = Delegate(testkeys.EdDSA("p"+keys[i], "k"), p, &Mandate{Subject: k(i + 1), Audience: []string{k(i + 1)},
			Task: Task{Purpose: "p"}, Capabilities: p.Mandate.Capabilities}, now)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := jws.Parse(tok, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parseACT(t.Members, PhaseMandate, true); err != nil {
			b.Fatal(err)
		}
	}
}
