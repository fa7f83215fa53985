// Package mcp is the Model Context Protocol binding of spec/bindings.md
// (BND-5..BND-7) for the Streamable HTTP transport: Handler puts the
// transport middleware (TR-9) in front of any MCP server's HTTP handler
// (the official Go SDK's, or a reverse proxy to another server: agentctx
// proxy --mcp); ServerMiddleware hands the verified request to the Go
// SDK's tool handlers through their context; the client side attaches
// tokens to tools/call and collects the ECT or ACT record returned.
//
// A tools/call is the task mcp.<tool>: its inp_hash covers the exact
// request bytes, its out_hash the exact JSON-RPC response message for its
// id, inside an SSE stream too. initialize, server/discover, tools/list,
// notifications and the session's GET and DELETE pass without a record.
package mcp

import (
	"context"
	"net/http"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentctx/agentctx/internal/telemetry"
	"github.com/agentctx/agentctx/transport"
)

// headerRef carries, from the HTTP handler to the SDK middleware in the
// same process, the reference of a verified request; it is removed from
// every incoming request.
const headerRef = "Agentctx-Verified-Ref"

// Handler is the MCP endpoint behind the middleware. Safe for concurrent
// use.
type Handler struct {
	h       http.Handler
	refs    sync.Map // reference -> *transport.Verified, for the requests in flight
	tr      *telemetry.Tracer
	maxBody int64
}

// NewHandler returns next (an MCP server's Streamable HTTP handler) behind
// the transport middleware configured by cfg: tools/call verified as
// cfg.Policy says, its action mcp.<tool> (checked against an ACT mandate's
// capabilities), its ECT or ACT record signed into the response; other
// methods verified only if they carry tokens, without a record.
func NewHandler(cfg transport.ServerConfig, next http.Handler) (*Handler, error) {
	h := &Handler{tr: telemetry.New(cfg.TracerProvider)}
	cfg.PolicyFor = policy(cfg.Policy)
	prev := cfg.Action
	cfg.Action = func(r *http.Request) string {
		if c := mcpOf(r.Context()); c.isToolCall() {
			return "mcp." + c.tool // SPEC: BND-5 the ACT capability form
		}
		if prev != nil {
			return prev(r)
		}
		return r.Method + " " + r.URL.Path
	}
	maxBody := cfg.MaxBody
	if maxBody == 0 {
		maxBody = transport.DefaultMaxBody
	}
	// A tool call's reply is held whole to hash its message: the middleware
	// need not stream it.
	cfg.StreamAbove = maxBody
	mw, err := transport.NewMiddleware(cfg)
	if err != nil {
		return nil, err
	}
	h.maxBody = maxBody
	h.h = &front{next: mw.Wrap(&inner{h: h, next: next}), maxBody: maxBody}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.h.ServeHTTP(w, r) }

// ServerMiddleware is the Go SDK receiving middleware (Server.
// AddReceivingMiddleware) that gives each tool handler the request the
// Handler verified: transport.FromContext(ctx) in the handler returns it,
// and transport.SetTask there says what the tool did.
func (h *Handler) ServerMiddleware() sdk.Middleware {
	return func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			if extra := req.GetExtra(); extra != nil && extra.Header != nil {
				if v, ok := h.refs.Load(extra.Header.Get(headerRef)); ok {
					ctx = transport.NewContext(ctx, v.(*transport.Verified))
				}
			}
			return next(ctx, method, req)
		}
	}
}
