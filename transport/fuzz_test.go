package transport_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzMiddlewareFields: any values of the identity, proof and token fields
// get a status from the middleware, never a panic or a 5xx.
func FuzzMiddlewareFields(f *testing.F) {
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.sig", "WPT a.b.c", "a.b.c, d.e.f", "", "")
	f.Add("", "Bearer x", "", `wimse=("@method");tag="wimse-workload-to-workload"`, "wimse=:AA==:")
	f.Add("x", "WPT", ",,,,", "", "")
	w := newWorld(f, nil)
	f.Fuzz(func(t *testing.T, wit, authz, ectField, sigInput, sig string) {
		req := httptest.NewRequest("POST", "/api/echo", strings.NewReader("body"))
		for name, v := range map[string]string{"Workload-Identity-Token": wit, "Authorization": authz, "Execution-Context": ectField, "Signature-Input": sigInput, "Signature": sig} {
			if v != "" && !strings.ContainsAny(v, "\r\n\x00") {
				req.Header.Set(name, v)
			}
		}
		rec := httptest.NewRecorder()
		w.mw.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok") })).ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q %q %q", rec.Code, wit, authz, ectField)
		}
	})
}
