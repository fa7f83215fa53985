package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx/server"
)

// FuzzAppendRequest feeds POST /v1/entries any content type and body: the
// answer is never a 500 nor a panic, and a refusal is a problem (SVC-9).
func FuzzAppendRequest(f *testing.F) {
	fx := newFixtureWith(f, func(c *server.Config) { c.BatchWindow = 50 * time.Microsecond })
	f.Add("application/jwt", "eyJhbGciOiJFZERTQSJ9.e30.AA")
	f.Add("application/json", `{"tokens":["a","b,c"]}`)
	f.Add("application/json; charset=utf-8", `{"tokens":[1]}`)
	f.Add("text/plain", "\n\n")
	f.Add("multipart/form-data; boundary=x", "--x--")
	f.Add("application/json", `{"tokens":["`+strings.Repeat("a", 9000)+`"]}`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		req := httptest.NewRequest("POST", "/v1/entries", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		fx.s.ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}

// FuzzReadRequest feeds the read routes any path and query.
func FuzzReadRequest(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []string{"/v1/entries/0?proof=1", "/v1/workflows?limit=5&cursor=AAAA", "/v1/workflows/x?format=dot",
		"/v1/proofs/inclusion?index=0&size=0", "/v1/proofs/consistency?from=0&to=0", "/tile/0/x001/002.p/5",
		"/tile/entries/000.p/1", "/v1/tasks/%zz", "/checkpoint", "/metrics"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.NewRequest("GET", "http://x"+target, nil)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		rec := httptest.NewRecorder()
		fx.s.ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
	}
	if rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("status %d without a problem: %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	}
}
