package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

// BenchmarkVerifyBatch measures agentctx verify --batch in process over 2000
// mixed ES256/EdDSA ECTs per iteration (reading, verifying on all cores,
// writing the verdicts). Compare with ect's BenchmarkRawVerify per token.
func BenchmarkVerifyBatch(b *testing.B) {
	now := time.Unix(1767225600, 0)
	keys := []*trust.SigningKey{testkeys.ES256("bench", "k-ec"), testkeys.EdDSA("bench", "k-ed")}
	trustPath := writeTrust(b, "spiffe://ex.com/a", keys[0].Public(), keys[1].Public())
	var in strings.Builder
	const n = 2000
	for i := 0; i < n; i++ {
		tok, err := ect.Create(keys[i%2], &ect.Claims{Issuer: "spiffe://ex.com/a", Audience: []string{"spiffe://ex.com/b"}, ExecAct: "t", Pred: []string{ect.NewID()}}, now)
		if err != nil {
			b.Fatal(err)
		}
		in.WriteString(tok + "\n")
	}
	input := in.String()
	args := []string{"verify", "--trust", trustPath, "--audience", "spiffe://ex.com/b", "--now", "1767225600", "--batch", "-"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var errb bytes.Buffer
		if code := run(args, strings.NewReader(input), io.Discard, &errb); code != 0 {
			b.Fatal(errb.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
}
