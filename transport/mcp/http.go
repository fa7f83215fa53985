package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/telemetry"
	"github.com/agentctx/agentctx/transport"
)

// Keys of params._meta under which MCP clients without HTTP headers carry
// their tokens (BND-6), and under which the proxy returns the ECT of the
// call.
const (
	MetaExecutionContext = "io.agentctx/execution-context"
	MetaACTMandate       = "io.agentctx/act-mandate"
	// MetaACTRecord is where the ACT record of a call under a mandate comes
	// back in the result's _meta.
	MetaACTRecord = "io.agentctx/act-record"
)

// JSON-RPC error code of a tools/call the mandate does not allow
// (capability_violation, approval_required), in the server-defined range;
// the problem detail is its data.
const rpcRefused = -32001

// MCP request headers of the 2026-07-28 revision, checked against the body.
const (
	headerMCPMethod = "Mcp-Method"
	headerMCPName   = "Mcp-Name"
)

// mcpCall is what the proxy read of one JSON-RPC request.
type mcpCall struct {
	id       json.RawMessage
	method   string
	tool     string // params.name of a tools/call
	metaECTs []string
	metaMand string
}

type mcpKey struct{}

func mcpOf(ctx context.Context) *mcpCall {
	c, _ := ctx.Value(mcpKey{}).(*mcpCall)
	return c
}

func (c *mcpCall) isToolCall() bool { return c != nil && c.method == "tools/call" }

// parseMCP reads a JSON-RPC request (one message; MCP has no batches since
// 2025-06-18).
func parseMCP(body []byte) (*mcpCall, error) {
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return nil, errors.New("the body is not one JSON-RPC message")
	}
	c := &mcpCall{id: msg.ID, method: msg.Method}
	if msg.Method == "" {
		return c, nil // a response or an error the client sends back (sampling, elicitation)
	}
	if len(msg.Params) == 0 {
		return c, nil
	}
	var p struct {
		Name string                     `json:"name"`
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if err := json.Unmarshal(msg.Params, &p); err != nil {
		return nil, errors.New("the JSON-RPC params are not an object")
	}
	if c.method == "tools/call" {
		if p.Name == "" {
			return nil, errors.New("a tools/call without params.name")
		}
		c.tool = p.Name
	}
	if raw, ok := p.Meta[MetaExecutionContext]; ok {
		if err := json.Unmarshal(raw, &c.metaECTs); err != nil {
			var one string
			if json.Unmarshal(raw, &one) != nil {
				return nil, fmt.Errorf("_meta %q is not an array of compact ECTs", MetaExecutionContext)
			}
			c.metaECTs = []string{one}
		}
	}
	if raw, ok := p.Meta[MetaACTMandate]; ok {
		if err := json.Unmarshal(raw, &c.metaMand); err != nil {
			return nil, fmt.Errorf("_meta %q is not a compact ACT", MetaACTMandate)
		}
	}
	return c, nil
}

// front runs before the middleware: it reads the JSON-RPC request,
// checks the MCP headers against it, moves tokens from params._meta into
// the HTTP fields the middleware verifies (the same token in both places
// is checked once), and after the middleware answered returns the call's
// ECT in the result's _meta when the client sent its tokens there.
type front struct {
	next    http.Handler
	maxBody int64
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Header.Del(headerRef) // only inner sets it
	if r.Method != http.MethodPost {
		f.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, f.maxBody+1))
	r.Body.Close()
	if err != nil || int64(len(body)) > f.maxBody {
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeTooLarge, "BND-4", "", "the request body is unreadable or over %d bytes", f.maxBody), http.StatusRequestEntityTooLarge)
		return
	}
	call, err := parseMCP(body)
	if err != nil {
		transport.WriteProblem(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-5", "", "%v", err))
		return
	}
	// SPEC: BND-6 Mcp-Method and Mcp-Name (2026-07-28) must say what the body says.
	if m := r.Header.Get(headerMCPMethod); m != "" && m != call.method {
		transport.WriteProblem(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-6", "", "Mcp-Method %q is not the body's method %q", m, call.method))
		return
	}
	if n := r.Header.Get(headerMCPName); n != "" && call.isToolCall() && n != call.tool {
		transport.WriteProblem(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-6", "", "Mcp-Name %q is not the called tool %q", n, call.tool))
		return
	}
	// SPEC: BND-6 tokens in params._meta: into the HTTP fields, once.
	if len(call.metaECTs) > 0 {
		have := r.Header.Get(transport.HeaderExecutionContext)
		if have == "" {
			r.Header.Set(transport.HeaderExecutionContext, strings.Join(call.metaECTs, ", "))
		} else if !sameValues(have, call.metaECTs) {
			transport.WriteProblem(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-6", "", "the ECTs in Execution-Context and in params._meta differ"))
			return
		}
	}
	if call.metaMand != "" {
		if have := r.Header.Get(transport.HeaderACTMandate); have == "" {
			r.Header.Set(transport.HeaderACTMandate, call.metaMand)
		} else if strings.TrimSpace(have) != call.metaMand {
			transport.WriteProblem(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-6", "", "the mandates in ACT-Mandate and in params._meta differ"))
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r = r.WithContext(context.WithValue(r.Context(), mcpKey{}, call))
	if !call.isToolCall() {
		f.next.ServeHTTP(w, r)
		return
	}
	rec := &capture{header: http.Header{}, status: http.StatusOK, max: f.maxBody}
	f.next.ServeHTTP(rec, r)
	out := rec.body.Bytes()
	// SPEC: BND-6 a tool the mandate does not allow: a JSON-RPC error with the problem as data.
	if rec.status == http.StatusForbidden && strings.HasPrefix(rec.header.Get("Content-Type"), "application/problem+json") {
		var p transport.Problem
		if json.Unmarshal(out, &p) == nil && (p.Code == agentctx.CodeCapabilityViolation || p.Code == agentctx.CodeApprovalRequired) {
			msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": call.id, "error": map[string]any{"code": rpcRefused, "message": p.Detail, "data": p}})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.Write(msg)
			return
		}
	}
	// A client that carries its tokens in _meta gets the call's token
	// there too, in its copy (out_hash is over the upstream's message as
	// it sent it).
	if len(call.metaECTs) > 0 || call.metaMand != "" {
		key, tok := MetaExecutionContext, rec.header.Get(transport.HeaderExecutionContext)
		if rt := rec.header.Get(transport.HeaderACTRecord); rt != "" {
			key, tok = MetaACTRecord, rt
		}
		if tok != "" && rec.header.Get("Signature") == "" && rec.status == http.StatusOK {
			if b, err := embedToken(out, rec.header.Get("Content-Type"), body, key, tok); err == nil {
				out = b
			}
		}
	}
	for k, vs := range rec.header {
		w.Header()[k] = vs
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.status)
	w.Write(out)
}

func sameValues(field string, vals []string) bool {
	var got []string
	for _, p := range strings.Split(field, ",") {
		got = append(got, strings.TrimSpace(p))
	}
	return slices.Equal(got, vals)
}

// capture records a response.
type capture struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int64
	overflow bool
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) WriteHeader(s int)   { c.status = s }

// Write holds a tool call's reply up to max (its out_hash needs the whole
// message; BND-4): beyond it the call fails, never held whole.
func (c *capture) Write(b []byte) (int, error) {
	if int64(c.body.Len()+len(b)) > c.max {
		c.overflow = true
		return 0, errors.New("the MCP reply is over the body cap")
	}
	return c.body.Write(b)
}

// inner runs inside the middleware, before the MCP server: a tools/call
// is the task mcp.<tool>, its out_hash over the response message for its
// id and its failure read from it; anything else is no task. The verified
// request is registered under a one-time reference for the Go SDK's
// middleware (Handler.ServerMiddleware), which hands it to the tool
// handler's context.
type inner struct {
	h    *Handler
	next http.Handler
}

func (m *inner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	call := mcpOf(ctx)
	if !call.isToolCall() {
		transport.SkipTask(ctx)
		m.next.ServeHTTP(w, r)
		return
	}
	if v := transport.FromContext(ctx); v != nil {
		ref := rand.Text()
		m.h.refs.Store(ref, v)
		defer m.h.refs.Delete(ref)
		r.Header.Set(headerRef, ref)
	}
	var sp telemetry.Span
	if m.h.tr.Enabled() {
		// SPEC: BND-9 a span per tool call.
		var tctx context.Context
		tctx, sp = m.h.tr.Start(ctx, "agentctx.tool_call", nil, telemetry.ExecAct.String("mcp."+call.tool))
		r = r.WithContext(tctx)
	}
	rec := &capture{header: w.Header(), status: http.StatusOK, max: m.h.maxBody}
	m.next.ServeHTTP(rec, r)
	if rec.overflow {
		if m.h.tr.Enabled() {
			sp.End(string(agentctx.CodeTooLarge))
		}
		transport.SkipTask(ctx)
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeTooLarge, "BND-4", "", "the tool's reply is over %d bytes", m.h.maxBody), http.StatusBadGateway)
		return
	}
	msg := transport.MCPResponseMessage(rec.header.Get("Content-Type"), rec.body.Bytes(), transport.FromContext(ctx).Body)
	t := transport.Task{ExecAct: "mcp." + call.tool, OutputHash: agentctx.HashBytes(msg), Failed: toolFailure(msg)}
	if m.h.tr.Enabled() {
		res := "ok"
		if t.Failed != "" {
			res = t.Failed
		}
		sp.End(res)
	}
	if prev := transport.TaskOf(ctx); prev != nil { // the tool handler may have set its own
		t.Pred, t.Ext = prev.Pred, prev.Ext
		if prev.Failed != "" {
			t.Failed = prev.Failed
		}
	}
	transport.SetTask(ctx, t)
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

// policy keeps the configured policy for tools/call and relaxes it to
// verify-if-present for the rest (BND-6: they pass without a record).
func policy(p transport.Policy) func(*http.Request) transport.Policy {
	return func(r *http.Request) transport.Policy {
		if mcpOf(r.Context()).isToolCall() || p != transport.Require {
			return p
		}
		return transport.VerifyIfPresent
	}
}

// toolFailure returns the error code of a failed tool call (an ACT record
// then says failed): the JSON-RPC error's code, or "tool_error" for a
// result with isError; "" for a success.
func toolFailure(msg []byte) string {
	if !bytes.Contains(msg, []byte(`"error"`)) && !bytes.Contains(msg, []byte(`"isError"`)) {
		return "" // the common case, without decoding the message
	}
	var m struct {
		Error *struct {
			Code json.Number `json:"code"`
		} `json:"error"`
		Result *struct {
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return ""
	}
	switch {
	case m.Error != nil:
		return "jsonrpc_" + m.Error.Code.String()
	case m.Result != nil && m.Result.IsError:
		return "tool_error"
	}
	return ""
}

// embedToken adds the call's token to result._meta[key] of the response
// message for the request's id, in a JSON or an SSE reply.
func embedToken(body []byte, contentType string, request []byte, key, tok string) ([]byte, error) {
	add := func(msg []byte) ([]byte, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(msg, &m); err != nil {
			return nil, err
		}
		var res map[string]json.RawMessage
		if err := json.Unmarshal(m["result"], &res); err != nil {
			return nil, err
		}
		meta := map[string]json.RawMessage{}
		if raw, ok := res["_meta"]; ok {
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, err
			}
		}
		if key == MetaExecutionContext {
			meta[key], _ = json.Marshal([]string{tok})
		} else {
			meta[key], _ = json.Marshal(tok)
		}
		res["_meta"], _ = json.Marshal(meta)
		m["result"], _ = json.Marshal(res)
		return json.Marshal(m)
	}
	ct, _, _ := mime.ParseMediaType(contentType)
	if ct != "text/event-stream" {
		return add(body)
	}
	msg := transport.MCPResponseMessage(contentType, body, request)
	if bytes.Equal(msg, body) || bytes.Contains(msg, []byte("\n")) {
		return nil, errors.New("no single-line response message in the stream")
	}
	b, err := add(msg)
	if err != nil {
		return nil, err
	}
	return bytes.Replace(body, append([]byte("data: "), msg...), append([]byte("data: "), b...), 1), nil
}
