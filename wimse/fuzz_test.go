package wimse_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

// FuzzWITAndWPT: any WIT and WPT give a verdict, never a panic.
func FuzzWITAndWPT(f *testing.F) {
	issuer := testkeys.ES256("fuzz wimse", "td")
	wl := testkeys.EdDSA("fuzz wimse wl", "wl")
	now := time.Unix(1767225600, 0)
	wit, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: "spiffe://example.com/a", Key: wl.Public()}, now)
	wpt, _ := wimse.CreateWPT(wl.Signer(), "EdDSA", wimse.WPTClaims{Audience: "https://x/p", WIT: wit, Other: map[string]string{"execution-context": "e"}}, now)
	f.Add(wit, wpt, "e")
	f.Add("eyJhbGciOiJFUzI1NiIsInR5cCI6IndpdCtqd3QifQ.e30.", "a.b.c", "")
	f.Add("", "", "x")
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	f.Fuzz(func(t *testing.T, witTok, wptTok, field string) {
		v, err := wimse.NewValidator(wimse.Config{Trust: ts, Clock: func() time.Time { return now }, Audience: "https://x/p"})
		if err != nil {
			t.Fatal(err)
		}
		w, err := v.ValidateWIT(context.Background(), witTok)
		if err != nil {
			return
		}
		_, _ = v.ValidateWPT(context.Background(), wptTok, w, wimse.Request{Fields: map[string]string{"execution-context": field}})
		_, _ = wimse.WorkloadTrustDomain(field)
	})
}
