package mcp_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/transport/mcp"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

const (
	clientID = "spiffe://example.com/agent/a"
	serverID = "spiffe://example.com/tool/search"
)

var (
	issuer    = testkeys.ES256("mcp issuer", "td-1")
	clientKey = testkeys.EdDSA("mcp client", "a-1")
	serverKey = testkeys.EdDSA("mcp server", "s-1")
)

type searchIn struct {
	Query string `json:"query"`
}

// TestGoSDK (BND-7): a Go SDK MCP server behind the binding's Handler and
// a Go SDK client over the binding's RoundTripper. The tool handler sees
// the verified caller through its context; the call's ECT (exec_act
// mcp.search, out_hash of its response message) comes back and is
// verified by the client; initialize and tools/list pass without tokens.
func TestGoSDK(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	ts.Add(trust.Binding{ID: serverID}, serverKey.Public())
	server := sdk.NewServer(&sdk.Implementation{Name: "search", Version: "1"}, nil)
	var seen string
	sdk.AddTool(server, &sdk.Tool{Name: "search", Description: "finds things"}, func(ctx context.Context, _ *sdk.CallToolRequest, in searchIn) (*sdk.CallToolResult, any, error) {
		v := transport.FromContext(ctx)
		if v == nil || v.ECT == nil {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "no verified caller"}}}, nil, nil
		}
		seen = v.ECT.Claims.Issuer
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "found " + in.Query + " for " + v.ECT.Claims.ID}}}, nil, nil
	})
	var base string
	exp := tracetest.NewInMemoryExporter()
	h, err := mcp.NewHandler(transport.ServerConfig{ID: serverID, Key: serverKey, Trust: ts, WITTrust: ts, Clock: clock,
		Audience: func(r *http.Request) string { return base + r.URL.Path }, Log: slog.New(slog.DiscardHandler),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))},
		sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return server }, nil))
	if err != nil {
		t.Fatal(err)
	}
	server.AddReceivingMiddleware(h.ServerMiddleware())
	srv := httptest.NewServer(h)
	defer srv.Close()
	base = srv.URL

	wit, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: clientID, Key: clientKey.Public()}, now)
	tc, err := transport.NewClient(transport.ClientConfig{ID: clientID, Key: clientKey, WIT: wit, Trust: ts, WITTrust: ts, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	ctx := context.Background()
	cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: &http.Client{Transport: mcp.NewRoundTripper(tc, nil)},
		DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("BND-7: initialize through the binding: %v", err)
	}
	defer cs.Close()
	if tools, err := cs.ListTools(ctx, nil); err != nil || len(tools.Tools) != 1 {
		t.Fatalf("BND-7: tools/list: %v", err)
	}
	res := &transport.Result{}
	out, err := cs.CallTool(transport.WithCall(ctx, &transport.Call{ExecAct: "ask", Audience: []string{serverID}, Done: res}),
		&sdk.CallToolParams{Name: "search", Arguments: map[string]any{"query": "cats"}})
	if err != nil {
		t.Fatalf("BND-7: tools/call: %v", err)
	}
	text := out.Content[0].(*sdk.TextContent).Text
	if out.IsError || seen != clientID || !strings.HasPrefix(text, "found cats for "+res.Claims.ID) {
		t.Fatalf("BND-7: the tool handler's verified context: %q (saw %q)", text, seen)
	}
	r := res.ResponseECT
	if r == nil || r.Claims.ExecAct != "mcp.search" || r.Claims.Issuer != serverID || r.Claims.Pred[0] != res.Claims.ID {
		t.Fatalf("BND-7: the call's ECT: %+v", r)
	}
	// BND-9: a span for the tool call, inside the request's span.
	var tool, request *tracetest.SpanStub
	spans := exp.GetSpans()
	for i, sp := range spans {
		switch {
		case sp.Name == "agentctx.tool_call":
			tool = &spans[i]
		case sp.Name == "agentctx.request" && hasAttr(sp, "agentctx.jti", res.Claims.ID):
			request = &spans[i]
		}
	}
	if tool == nil || !hasAttr(*tool, "agentctx.exec_act", "mcp.search") || !hasAttr(*tool, "agentctx.result", "ok") || request == nil ||
		tool.Parent.TraceID() != request.SpanContext.TraceID() {
		t.Fatalf("BND-9: the tool call's span %+v", tool)
	}
	// Without the caller's tokens a tools/call is refused.
	plain := sdk.NewClient(&sdk.Implementation{Name: "anon", Version: "1"}, nil)
	ps, err := plain.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp", DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if _, err := ps.CallTool(ctx, &sdk.CallToolParams{Name: "search", Arguments: map[string]any{"query": "x"}}); err == nil {
		t.Fatal("BND-7: a tools/call without credentials went through")
	}
}

func hasAttr(s tracetest.SpanStub, key, val string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key && a.Value.Emit() == val {
			return true
		}
	}
	return false
}
