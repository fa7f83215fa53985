package transport_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentctx/agentctx/transport"
)

// TestTracing (BND-9, BND-10): with a tracer provider the middleware
// records a span per request, under the caller's traceparent, with the
// agentctx attributes and no token contents, and a verification span; with
// TraceClaim the signed ECT carries the request span's traceparent.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	w := newWorld(t, func(c *transport.ServerConfig) { c.TracerProvider = tp; c.TraceClaim = true })
	hc := w.client(t, transport.ProofWPT, false)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res := &transport.Result{}
	req, _ := http.NewRequestWithContext(transport.WithCall(t.Context(), &transport.Call{ExecAct: "ask", Audience: []string{serverID},
		WorkflowID: "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77", Done: res}), "POST", w.srv.URL+"/api/echo", strings.NewReader("hi"))
	req.Header.Set("Traceparent", parent)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	spans := exp.GetSpans()
	var reqSpan, verifySpan *tracetest.SpanStub
	for i := range spans {
		switch spans[i].Name {
		case "agentctx.request":
			reqSpan = &spans[i]
		case "agentctx.verify":
			verifySpan = &spans[i]
		}
	}
	if reqSpan == nil || verifySpan == nil {
		t.Fatalf("BND-9: spans %v", spans)
	}
	attrs := map[string]string{}
	for _, a := range reqSpan.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
		for _, tok := range []string{res.ECT, resp.Header.Get("Execution-Context"), w.clientWIT} {
			if len(tok) > 20 && strings.Contains(a.Value.Emit(), tok[:20]) {
				t.Errorf("BND-9: attribute %s carries token contents", a.Key)
			}
		}
	}
	if attrs["agentctx.jti"] != res.Claims.ID || attrs["agentctx.wid"] != "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77" || attrs["agentctx.exec_act"] == "" || attrs["agentctx.result"] != "ok" {
		t.Fatalf("BND-9: request span attributes %v", attrs)
	}
	if reqSpan.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || len(reqSpan.Links) == 0 || reqSpan.Links[0].SpanContext.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("BND-9: the request span's parent %v and links %v", reqSpan.Parent, reqSpan.Links)
	}
	if verifySpan.Parent.SpanID() != reqSpan.SpanContext.SpanID() {
		t.Fatal("BND-9: the verification span is not the request span's child")
	}
	var ext struct{ Traceparent string }
	json.Unmarshal(res.ResponseECT.Claims.Ext, &ext)
	want := "00-" + reqSpan.SpanContext.TraceID().String() + "-" + reqSpan.SpanContext.SpanID().String() + "-01"
	if ext.Traceparent != want {
		t.Fatalf("BND-10: ect_ext.traceparent %q, want %q", ext.Traceparent, want)
	}
	// A refused request's span says why.
	exp.Reset()
	r2, _ := http.NewRequest("POST", w.srv.URL+"/api/echo", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(r2); err == nil {
		resp.Body.Close()
	}
	result := ""
	for _, s := range exp.GetSpans() {
		for _, a := range s.Attributes {
			if s.Name == "agentctx.request" && a.Key == "agentctx.result" {
				result = a.Value.Emit()
			}
		}
	}
	if result != "wit_invalid" {
		t.Fatalf("BND-9: a refused request's span result %q, want wit_invalid", result)
	}
}
