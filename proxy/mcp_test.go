package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/transport/mcp"
	"github.com/agentctx/agentctx/trust"
)

// mcpServer is a small Streamable HTTP MCP server: initialize and
// tools/list answer JSON, tools/call answers an SSE stream (a priming
// event, a progress notification, then the response), except the tool
// "plain", answered with JSON.
func mcpServer(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base/mcp" || r.Method != "POST" {
			http.NotFound(w, r)
			return
		}
		var m struct {
			ID     json.RawMessage
			Method string
			Params struct{ Name string }
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		switch {
		case m.Method == "tools/call" && m.Params.Name != "plain" && m.Params.Name != "broken":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "id: e0\ndata: \n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n")
			fmt.Fprintf(w, "event: message\ndata: {\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"found %s\"}]},\"jsonrpc\":\"2.0\",\"id\":%s}\n\n", m.Params.Name, m.ID)
		case m.Method == "tools/call" && m.Params.Name == "broken":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"isError":true,"content":[{"type":"text","text":"it broke"}]}}`, m.ID)
		case m.ID == nil:
			w.WriteHeader(http.StatusAccepted) // a notification
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"method":%q,"content":[]}}`, m.ID, m.Method)
		}
	})
}

func mcpReq(method, name string, id int, meta string) string {
	params := ""
	if name != "" {
		params = fmt.Sprintf(`,"params":{"name":%q,"arguments":{"q":"x"}%s}`, name, meta)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q%s}`, id, method, params)
}

// TestMCPProxy (BND-5, BND-6): in MCP mode tools/call is the task
// mcp.<tool> with inp_hash over the exact request bytes and out_hash over
// the exact response message for its id, inside an SSE stream too; other
// methods pass without a record (and without credentials); the
// 2026-07-28 headers are checked against the body; tokens in
// params._meta are verified and the call's ECT comes back in the result's
// _meta.
func TestMCPProxy(t *testing.T) {
	base, hc, ts := setupWith(t, mcpServer(t), func(c *proxy.Config) { c.MCP = true })
	ts.Add(trust.Binding{ID: clientID}, clientKey.Public())
	plain := &http.Client{}
	post := func(hc *http.Client, body string, hdr ...string) (*http.Response, []byte, *transport.Result) {
		t.Helper()
		res := &transport.Result{}
		req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{proxyID}, Done: res}),
			"POST", base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b, res
	}
	// initialize passes without credentials and without a record.
	resp, b, _ := post(plain, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Execution-Context") != "" || !strings.Contains(string(b), `"initialize"`) {
		t.Fatalf("BND-6: initialize: %d %q %s", resp.StatusCode, resp.Header.Get("Execution-Context"), b)
	}
	if resp, _, _ := post(plain, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != 202 || resp.Header.Get("Execution-Context") != "" {
		t.Fatalf("BND-6: a notification: %d", resp.StatusCode)
	}
	// A tools/call needs the caller's ECT and proof (policy require).
	if resp, _, _ := post(plain, mcpReq("tools/call", "search", 1, "")); resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Fatalf("BND-5: a tools/call without credentials: %d", resp.StatusCode)
	}
	body := mcpReq("tools/call", "search", 7, "")
	resp, b, res := post(hc, body)
	if resp.StatusCode != 200 || res.ResponseECT == nil {
		t.Fatalf("BND-5: tools/call: %d %s", resp.StatusCode, b)
	}
	msg := `{"result":{"content":[{"type":"text","text":"found search"}]},"jsonrpc":"2.0","id":7}`
	c := res.ResponseECT.Claims
	if c.ExecAct != "mcp.search" || c.InputHash != agentctx.HashBytes([]byte(body)) || c.OutputHash != agentctx.HashBytes([]byte(msg)) || c.Pred[0] != res.Claims.ID {
		t.Fatalf("BND-5: the call's ECT: exec_act %q inp %q out %q (want out %q)", c.ExecAct, c.InputHash, c.OutputHash, agentctx.HashBytes([]byte(msg)))
	}
	if !strings.Contains(string(b), "data: "+msg+"\n") {
		t.Fatalf("BND-5: the SSE stream reached the client changed:\n%s", b)
	}
	// A JSON reply: out_hash over the whole body.
	body = mcpReq("tools/call", "plain", 8, "")
	if resp, b, res := post(hc, body); resp.StatusCode != 200 || res.ResponseECT == nil || res.ResponseECT.Claims.OutputHash != agentctx.HashBytes(b) ||
		res.ResponseECT.Claims.ExecAct != "mcp.plain" {
		t.Fatalf("BND-5: a JSON reply: %d %s", resp.StatusCode, b)
	}
	// tools/list passes without a record.
	if resp, _, _ := post(plain, `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`); resp.StatusCode != 200 || resp.Header.Get("Execution-Context") != "" {
		t.Fatalf("BND-6: tools/list: %d", resp.StatusCode)
	}
	// The 2026-07-28 headers must say what the body says.
	for _, h := range [][]string{{"Mcp-Method", "tools/list"}, {"Mcp-Name", "other"}} {
		if resp, b, _ := post(hc, mcpReq("tools/call", "search", 10, ""), h...); resp.StatusCode != 400 || !strings.Contains(string(b), "BND-6") {
			t.Fatalf("BND-6: %s %s against the body: %d %s", h[0], h[1], resp.StatusCode, b)
		}
	}
	if resp, _, res := post(hc, mcpReq("tools/call", "search", 11, ""), "Mcp-Method", "tools/call", "Mcp-Name", "search"); resp.StatusCode != 200 || res.ResponseECT == nil {
		t.Fatalf("BND-6: matching headers: %d", resp.StatusCode)
	}
	if resp, _, _ := post(hc, `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`); resp.StatusCode != 400 {
		t.Fatalf("BND-5: a JSON-RPC batch: %d", resp.StatusCode)
	}
}

// TestMCPMeta (BND-6): a client without HTTP headers puts its ECT in
// params._meta; the proxy verifies it (the same token in the header too is
// checked once) and returns the call's ECT in the result's _meta.
func TestMCPMeta(t *testing.T) {
	base, _, ts := setupWith(t, mcpServer(t), func(c *proxy.Config) { c.MCP = true; c.Policy = transport.VerifyIfPresent })
	ts.Add(trust.Binding{ID: clientID}, clientKey.Public())
	var tok string
	for _, inHeader := range []bool{false, true} {
		claims := &ect.Claims{Issuer: clientID, Audience: []string{proxyID}, ExecAct: "ask"}
		var err error
		if tok, err = ect.Create(clientKey, claims, now); err != nil {
			t.Fatal(err)
		}
		body := mcpReq("tools/call", "search", 3, fmt.Sprintf(`,"_meta":{%q:[%q]}`, mcp.MetaExecutionContext, tok))
		req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if inHeader {
			req.Header.Set("Execution-Context", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ret := resp.Header.Get("Execution-Context")
		if resp.StatusCode != 200 || ret == "" || !strings.Contains(string(b), `"_meta":{"`+mcp.MetaExecutionContext+`":["`+ret+`"]}`) {
			t.Fatalf("BND-6: tokens in _meta (in the header too: %v): %d %s", inHeader, resp.StatusCode, b)
		}
		v, _ := ect.NewVerifier(ect.Config{Trust: ts, Audience: clientID, Clock: func() time.Time { return now }})
		r, err := v.Verify(context.Background(), ret)
		if err != nil || r.Claims.Pred[0] != claims.ID {
			t.Fatalf("BND-6: the returned ECT: %v", err)
		}
	}
	// The header and _meta disagreeing is refused.
	other, _ := ect.Create(clientKey, &ect.Claims{Issuer: clientID, Audience: []string{proxyID}, ExecAct: "ask"}, now)
	req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(mcpReq("tools/call", "search", 4, fmt.Sprintf(`,"_meta":{%q:[%q]}`, mcp.MetaExecutionContext, tok))))
	req.Header.Set("Execution-Context", other)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("BND-6: header and _meta differ: %v %d", err, resp.StatusCode)
	}
}

// TestMCPMandate (BND-6, ACT-V3): a tools/call under an ACT mandate is
// allowed only for a tool among its capabilities (mcp.<tool>); otherwise
// the caller gets a JSON-RPC error with the problem as data. An allowed
// call is answered with the ACT record of the call: completed, or failed
// with err.code for a tool error; a mandate in params._meta gets the
// record back in the result's _meta.
func TestMCPMandate(t *testing.T) {
	base, _, ts := setupWith(t, mcpServer(t), func(c *proxy.Config) { c.MCP = true; c.Policy = transport.VerifyIfPresent })
	ts.Add(trust.Binding{ID: clientID}, clientKey.Public())
	// One mandate per task (ACT): each call gets its own, whose jti its
	// record keeps.
	var mandate string
	send := func(body string, hdrMandate bool) (*http.Response, []byte) {
		t.Helper()
		var err error
		mandate, err = act.NewMandate(clientKey, &act.Mandate{Issuer: clientID, Subject: proxyID, Audience: []string{proxyID}, Task: act.Task{Purpose: "search"},
			Capabilities: []act.Capability{{Action: "mcp.search"}, {Action: "mcp.broken"}}}, now)
		if err != nil {
			t.Fatal(err)
		}
		if !hdrMandate {
			body = strings.Replace(body, "MANDATE", mandate, 1)
		}
		req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if hdrMandate {
			req.Header.Set("ACT-Mandate", mandate)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	v, _ := act.NewVerifier(act.Config{Trust: ts, Audience: clientID, Clock: func() time.Time { return now }})
	body := mcpReq("tools/call", "search", 1, "")
	resp, b := send(body, true)
	rec := resp.Header.Get("ACT-Record")
	r, err := v.VerifyRecord(context.Background(), rec, []string{mandate})
	msg := transport.MCPResponseMessage(resp.Header.Get("Content-Type"), b, []byte(body))
	if resp.StatusCode != 200 || err != nil || r.Record.ExecAct != "mcp.search" || r.Record.Status != act.StatusCompleted ||
		r.Record.OutputHash != agentctx.HashBytes(msg) || r.Record.InputHash != agentctx.HashBytes([]byte(body)) {
		t.Fatalf("BND-6: the ACT record of an allowed call: %d %v %+v", resp.StatusCode, err, r)
	}
	resp, _ = send(mcpReq("tools/call", "broken", 2, ""), true)
	if r, err := v.VerifyRecord(context.Background(), resp.Header.Get("ACT-Record"), []string{mandate}); err != nil || r.Record.Status != act.StatusFailed ||
		r.Record.Err == nil || r.Record.Err.Code != "tool_error" {
		t.Fatalf("BND-6: a tool error: %v %+v", err, r)
	}
	resp, b = send(mcpReq("tools/call", "plain", 3, ""), true)
	var rpc struct {
		ID    int
		Error struct {
			Code int
			Data transport.Problem
		}
	}
	if json.Unmarshal(b, &rpc); resp.StatusCode != 200 || rpc.ID != 3 || rpc.Error.Code != -32001 || rpc.Error.Data.Code != agentctx.CodeCapabilityViolation ||
		resp.Header.Get("ACT-Record") != "" {
		t.Fatalf("BND-6: a tool outside the mandate: %d %s", resp.StatusCode, b)
	}
	// The mandate in params._meta: the record comes back in the result's _meta.
	resp, b = send(mcpReq("tools/call", "search", 4, fmt.Sprintf(`,"_meta":{%q:"MANDATE"}`, mcp.MetaACTMandate)), false)
	rec = resp.Header.Get("ACT-Record")
	if resp.StatusCode != 200 || rec == "" || !strings.Contains(string(b), `"`+mcp.MetaACTRecord+`":"`+rec+`"`) {
		t.Fatalf("BND-6: the record in _meta: %d %s", resp.StatusCode, b)
	}
}
