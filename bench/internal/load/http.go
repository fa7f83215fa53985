package load

import (
	"log"
	"net"
	"net/http"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/trust"
)

// Listen serves h on a free port of 127.0.0.1 and returns its address.
func Listen(h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go (&http.Server{Handler: h}).Serve(l)
	return l.Addr().String()
}

// Phase runs n calls of f from c workers and returns the rate, p50 and p99.
func Phase(c, n int, f func() error) (float64, time.Duration, time.Duration) {
	rate, lat := Run(c, n, func(int) error { return f() })
	return rate, Pct(lat, 50), Pct(lat, 99)
}

// SignatureCost measures, bare, the signature operations of one proxied
// request: the client signs its ECT and WPT with ck and verifies the
// response ECT signed with pk; the proxy verifies the WPT and the ECT and
// signs the response ECT. The WIT is verified once and cached.
func SignatureCost(ck, pk *trust.SigningKey) time.Duration {
	tokE, _ := ect.Create(ck, &ect.Claims{Issuer: "a", Audience: []string{"b"}, ExecAct: "x"}, time.Now())
	tokS, _ := ect.Create(pk, &ect.Claims{Issuer: "b", Audience: []string{"a"}, ExecAct: "y"}, time.Now())
	e, _ := jws.Parse(tokE, 0)
	s, _ := jws.Parse(tokS, 0)
	const n = 2000
	t0 := time.Now()
	for i := 0; i < n; i++ {
		jws.Sign(ck.Alg(), ck.Signer(), e.SigningInput)
		jws.Sign(ck.Alg(), ck.Signer(), e.SigningInput)
		jws.Verify(ck.Alg(), ck.Public().Public, e.SigningInput, e.Signature)
		jws.Verify(ck.Alg(), ck.Public().Public, e.SigningInput, e.Signature)
		jws.Sign(pk.Alg(), pk.Signer(), s.SigningInput)
		jws.Verify(pk.Alg(), pk.Public().Public, s.SigningInput, s.Signature)
	}
	return time.Since(t0) / n
}
