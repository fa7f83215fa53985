package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/wimse"
)

// signedInput is one compact JWS reduced to what a bare check needs.
type signedInput struct {
	alg   string
	input []byte
	sig   []byte
}

func bare(b *testing.B, tok string) signedInput {
	t, err := jws.Parse(tok, 0)
	if err != nil {
		b.Fatal(err)
	}
	return signedInput{t.Header.Alg, t.SigningInput, t.Signature}
}

// BenchmarkMiddleware measures TR-11 on the server side: a request with a
// WIT (verified once, then cached), a WPT and an ECT verified and the
// response ECT signed, against the bare signature operations each request
// contains (two verifications, one signature), alternating in one loop;
// x-raw is the ratio.
func BenchmarkMiddleware(b *testing.B) {
	w := newWorld(b, func(c *transport.ServerConfig) { c.Sink = nil })
	h := w.mw.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok") }))
	const n = 1024
	url := w.srv.URL + "/api/echo"
	type prepared struct {
		ect, wpt string
		checks   []signedInput
	}
	witIn := bare(b, w.clientWIT)
	mk := func() prepared {
		e, err := ect.Create(clientKey, &ect.Claims{Issuer: clientID, Audience: []string{serverID}, ExecAct: "ask"}, now)
		if err != nil {
			b.Fatal(err)
		}
		p, err := wimse.CreateWPT(clientKey.Signer(), "EdDSA", wimse.WPTClaims{Audience: url, WIT: w.clientWIT, Other: map[string]string{"execution-context": e}}, now)
		if err != nil {
			b.Fatal(err)
		}
		return prepared{e, p, []signedInput{witIn, bare(b, p), bare(b, e)}}
	}
	pool := make([]prepared, n)
	for i := range pool {
		pool[i] = mk()
	}
	clientPub := clientKey.Public().Public
	var tm, tr time.Duration
	const block = 16
	b.ResetTimer()
	for i := 0; i < b.N; i += block {
		if i%n == 0 && i > 0 {
			b.StopTimer()
			w = newWorld(b, func(c *transport.ServerConfig) { c.Sink = nil })
			h = w.mw.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok") }))
			url = w.srv.URL + "/api/echo"
			witIn = bare(b, w.clientWIT)
			for j := range pool {
				pool[j] = mk()
			}
			b.StartTimer()
		}
		// The block's requests are built before its clock starts: what is
		// timed is the middleware.
		var reqs [block]*http.Request
		var recs [block]*httptest.ResponseRecorder
		for j := range reqs {
			p := pool[(i+j)%n]
			reqs[j] = httptest.NewRequest("POST", url, strings.NewReader("body"))
			reqs[j].Header.Set("Workload-Identity-Token", w.clientWIT)
			reqs[j].Header.Set("Execution-Context", p.ect)
			reqs[j].Header.Set("Authorization", "WPT "+p.wpt)
			recs[j] = httptest.NewRecorder()
		}
		t0 := time.Now()
		for j := range reqs {
			h.ServeHTTP(recs[j], reqs[j])
		}
		t1 := time.Now()
		for j := i; j < i+block; j++ {
			p := pool[j%n]
			if jws.Verify(p.checks[1].alg, clientPub, p.checks[1].input, p.checks[1].sig) != nil ||
				jws.Verify(p.checks[2].alg, clientPub, p.checks[2].input, p.checks[2].sig) != nil {
				b.Fatal("bad signature")
			}
			if _, err := jws.Sign("ES256", serverKey.Signer(), p.checks[2].input); err != nil {
				b.Fatal(err)
			}
		}
		tm, tr = tm+t1.Sub(t0), tr+time.Since(t1)
		for _, rec := range recs {
			if rec.Code != 200 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	}
	b.ReportMetric(float64(tm)/float64(tr), "x-raw")
}

// fakeServer answers like the middleware would, signing the response ECT.
type fakeServer struct{}

func (fakeServer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok := strings.Split(r.Header.Get("Execution-Context"), ",")[0]
	res, _ := ect.ParseUnverified(tok)
	body := []byte("ok")
	e, err := ect.Create(serverKey, &ect.Claims{Issuer: serverID, Audience: []string{clientID}, ExecAct: "echo", Pred: []string{res.Claims.ID},
		OutputHash: agentctx.HashBytes(body)}, now)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Execution-Context", e)
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// BenchmarkRoundTripper measures TR-11 on the client side: the ECT and the
// WPT signed, the response ECT verified (and signed by the fake server),
// against the same bare operations, alternating in one loop.
func BenchmarkRoundTripper(b *testing.B) {
	w := newWorld(b, nil)
	c, err := transport.NewClient(transport.ClientConfig{ID: clientID, Key: clientKey, WIT: w.clientWIT, Trust: w.trust, WITTrust: w.trust,
		Clock: w.clock, Base: fakeServer{}})
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: c}
	sample, _ := ect.Create(serverKey, &ect.Claims{Issuer: serverID, Audience: []string{clientID}, ExecAct: "echo"}, now)
	s := bare(b, sample)
	serverPub := serverKey.Public().Public
	msg := sha256.Sum256([]byte("x"))
	var tm, tr time.Duration
	const block = 16
	for i := 0; i < b.N; i += block {
		t0 := time.Now()
		for j := 0; j < block; j++ {
			req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{serverID}}), "POST", "http://b.example.com/api", strings.NewReader("body"))
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
		t1 := time.Now()
		for j := 0; j < block; j++ {
			for k := 0; k < 2; k++ {
				if _, err := jws.Sign("EdDSA", clientKey.Signer(), msg[:]); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := jws.Sign("ES256", serverKey.Signer(), msg[:]); err != nil {
				b.Fatal(err)
			}
			if jws.Verify(s.alg, serverPub, s.input, s.sig) != nil {
				b.Fatal("bad signature")
			}
		}
		tm, tr = tm+t1.Sub(t0), tr+time.Since(t1)
	}
	b.ReportMetric(float64(tm)/float64(tr), "x-raw")
}
