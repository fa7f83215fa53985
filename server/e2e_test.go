package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/mcptest"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/server"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/transport/mcp"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

// TestMCPWorkflow is BND-8 end to end: a user's ACT mandate to an
// orchestrating agent, which plans, then calls three MCP tools at once (a
// fork): search on a Go server with the MCP binding, and get-sum twice in
// parallel on the reference MCP server from npm behind the proxy in MCP
// mode; it then joins the three results. The tool servers record what
// they sign, and the callers' ECTs, through their spools; the
// orchestrator appends its own plan and join. The audit service then
// holds one workflow with a fork and a join, every node verified, every
// receipt valid, the audit passes, and the web page draws every node and
// edge.
func TestMCPWorkflow(t *testing.T) {
	ref := mcptest.Reference(t)
	page := browser(t)
	const (
		userID  = "spiffe://example.com/user/alice"
		orchID  = "spiffe://example.com/agent/orchestrator"
		toolID  = "spiffe://example.com/tool/search"
		proxyID = "spiffe://example.com/tool/everything"
		wid     = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
	)
	var (
		idp      = testkeys.ES256("e2e identity server", "td-1")
		userKey  = testkeys.EdDSA("e2e user", "u-1")
		orchKey  = testkeys.EdDSA("e2e orchestrator", "o-1")
		toolKey  = testkeys.ES256("e2e tool", "t-1")
		proxyKey = testkeys.EdDSA("e2e proxy", "p-1")
	)
	ts := trust.NewSet()
	ts.AddWIT("example.com", idp.Public())
	for id, k := range map[string]*trust.SigningKey{userID: userKey, orchID: orchKey, toolID: toolKey, proxyID: proxyKey} {
		ts.Add(trust.Binding{ID: id}, k.Public())
	}
	f := newFixtureFull(t, nil, func(c *ledger.Config) { c.Trust = ts }, func(*server.Config) {})
	ledgerID := ledgertest.LedgerID
	quiet := slog.New(slog.DiscardHandler)
	spool := func(name string) *proxy.Spool {
		sp, err := proxy.OpenSpool(proxy.SpoolConfig{Path: filepath.Join(t.TempDir(), name), Sender: &proxy.HTTPSender{URL: f.srv.URL}, Clock: time.Now,
			MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sp.Close() })
		return sp
	}
	listen := func() (net.Listener, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln, "http://" + ln.Addr().String()
	}

	// The Go tool server: the Go SDK behind the MCP binding.
	toolSpool := spool("tool.spool")
	search := sdk.NewServer(&sdk.Implementation{Name: "search", Version: "1"}, nil)
	sdk.AddTool(search, &sdk.Tool{Name: "search", Description: "finds sources"}, func(ctx context.Context, _ *sdk.CallToolRequest, in struct {
		Query string `json:"query"`
	}) (*sdk.CallToolResult, any, error) {
		if transport.FromContext(ctx) == nil {
			return nil, nil, io.ErrUnexpectedEOF
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "3 sources on " + in.Query}}}, nil, nil
	})
	toolLn, toolURL := listen()
	toolH, err := mcp.NewHandler(transport.ServerConfig{ID: toolID, Key: toolKey, Trust: ts, WITTrust: ts, Clock: time.Now, Sink: toolSpool, LedgerID: ledgerID,
		Audience: func(r *http.Request) string { return toolURL + r.URL.Path }, Log: quiet},
		sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return search }, nil))
	if err != nil {
		t.Fatal(err)
	}
	search.AddReceivingMiddleware(toolH.ServerMiddleware())
	toolSrv := &http.Server{Handler: toolH}
	go toolSrv.Serve(toolLn)
	t.Cleanup(func() { toolSrv.Close() })

	// The reference server behind the proxy in MCP mode.
	proxySpool := spool("proxy.spool")
	proxyLn, proxyURL := listen()
	up, _ := url.Parse(ref)
	pub, _ := url.Parse(proxyURL)
	ph, err := proxy.New(proxy.Config{ServerConfig: transport.ServerConfig{ID: proxyID, Key: proxyKey, Trust: ts, WITTrust: ts, Clock: time.Now,
		Sink: proxySpool, LedgerID: ledgerID, Log: quiet}, Upstream: up, PublicURL: pub, MCP: true})
	if err != nil {
		t.Fatal(err)
	}
	proxySrv := &http.Server{Handler: ph}
	go proxySrv.Serve(proxyLn)
	t.Cleanup(func() { proxySrv.Close() })

	// The orchestrator: its WIT, the TR-10 client, two MCP sessions.
	ctx := context.Background()
	now := time.Now()
	wit, err := wimse.IssueWIT(idp, wimse.WITClaims{Subject: orchID, Key: orchKey.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := transport.NewClient(transport.ClientConfig{ID: orchID, Key: orchKey, WIT: wit, Trust: ts, WITTrust: ts, Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	session := func(endpoint string) *sdk.ClientSession {
		c := sdk.NewClient(&sdk.Implementation{Name: "orchestrator", Version: "1"}, nil)
		s, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: mcp.NewRoundTripper(tc, nil)},
			DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatalf("BND-8: an MCP session with %s: %v", endpoint, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	toolS, refS := session(toolURL+"/mcp"), session(proxyURL+"/mcp")

	appendTok := func(tok string) {
		t.Helper()
		resp, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
		if resp.StatusCode != 200 {
			t.Fatalf("BND-8: append: %d %s", resp.StatusCode, b)
		}
	}
	// The user's mandate, and the orchestrator's plan that follows it.
	m := &act.Mandate{Issuer: userID, Subject: orchID, Audience: []string{orchID}, WorkflowID: wid, Task: act.Task{Purpose: "research a question"},
		Capabilities: []act.Capability{{Action: "research"}}}
	mandate, err := act.NewMandate(userKey, m, now)
	if err != nil {
		t.Fatal(err)
	}
	appendTok(mandate)
	plan := &ect.Claims{Issuer: orchID, Audience: []string{ledgerID}, WorkflowID: wid, ExecAct: "plan", Pred: []string{m.ID}}
	planTok, err := ect.Create(orchKey, plan, now)
	if err != nil {
		t.Fatal(err)
	}
	appendTok(planTok)

	// The fork: three tool calls at once, two on the same server in parallel.
	calls := []struct {
		s    *sdk.ClientSession
		peer string
		p    *sdk.CallToolParams
		res  *transport.Result
	}{
		{toolS, toolID, &sdk.CallToolParams{Name: "search", Arguments: map[string]any{"query": "tides"}}, &transport.Result{}},
		{refS, proxyID, &sdk.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": 2, "b": 3}}, &transport.Result{}},
		{refS, proxyID, &sdk.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": 5, "b": 8}}, &transport.Result{}},
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx := transport.WithCall(ctx, &transport.Call{ExecAct: "ask." + c.p.Name, Audience: []string{c.peer, ledgerID}, Pred: []string{plan.ID},
				WorkflowID: wid, Done: c.res})
			if out, err := c.s.CallTool(cctx, c.p); err != nil || out.IsError {
				t.Errorf("BND-8: %s: %v", c.p.Name, err)
			}
		}()
	}
	wg.Wait()
	// The join.
	var after []string
	for _, c := range calls {
		if c.res.ResponseECT == nil {
			t.Fatalf("BND-8: %s returned no verified ECT", c.p.Name)
		}
		after = append(after, c.res.ResponseECT.Claims.ID)
	}
	join := &ect.Claims{Issuer: orchID, Audience: []string{ledgerID}, WorkflowID: wid, ExecAct: "join", Pred: after}
	joinTok, err := ect.Create(orchKey, join, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The join's predecessors must be in the ledger first: each tool server's
	// spool holds the caller's ECT and its own, per call.
	for sp, want := range map[*proxy.Spool]int64{toolSpool: 2, proxySpool: 4} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			st, _ := sp.Status(ctx)
			if st.Pending == 0 && st.Sent == want && st.Refused == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("BND-8: a spool: %+v, want %d sent", st, want)
			}
		}
	}
	appendTok(joinTok)

	// The audit service holds one workflow with a fork and a join.
	_, b := get(t, f.srv.URL+"/v1/workflows/"+wid)
	var g struct {
		Nodes []struct {
			JTI  string `json:"jti"`
			Kind string `json:"kind"`
			Pred []string
		} `json:"nodes"`
		Edges []struct{ From, To string } `json:"edges"`
		Roots []string                    `json:"roots"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	succ := map[string]int{}
	pred := map[string]int{}
	for _, e := range g.Edges {
		succ[e.From]++
		pred[e.To]++
	}
	if len(g.Nodes) != 9 || len(g.Edges) != 10 || succ[plan.ID] != 3 || pred[join.ID] != 3 || len(g.Roots) != 1 || g.Roots[0] != m.ID {
		t.Fatalf("BND-8: the workflow: %d nodes, %d edges, plan forks to %d, join from %d, roots %v\n%s", len(g.Nodes), len(g.Edges), succ[plan.ID], pred[join.ID], g.Roots, b)
	}
	// Every node verified (the ledger took it) and every receipt valid.
	for i := 0; i < 9; i++ {
		_, eb := get(t, f.srv.URL+"/v1/entries/"+strconv.Itoa(i))
		var e struct{ Token string }
		json.Unmarshal(eb, &e)
		_, rb := get(t, f.srv.URL+"/v1/entries/"+strconv.Itoa(i)+"/receipt")
		if err := ledger.VerifyReceipt(f.vkey, receiptOf(t, rb), []byte(e.Token)); err != nil {
			t.Fatalf("BND-8: the receipt of entry %d: %v", i, err)
		}
	}
	if rep, err := f.l.Audit(ctx); err != nil || rep.Size != 9 {
		t.Fatalf("BND-8: the audit: %v %+v", err, rep)
	}
	// The web page draws it: one element per task and per edge.
	if err := chromedp.Do(page, chromedp.Navigate(f.srv.URL+"/workflows/"+wid), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`))); err != nil {
		t.Fatal(err)
	}
	counts, err := chromedp.Run(page, chromedp.Evaluate[[]float64](`[document.querySelectorAll('[data-jti]').length, document.querySelectorAll('[data-from][data-to]').length]`))
	if err != nil || counts[0] != 9 || counts[1] != 10 {
		t.Fatalf("BND-8: the page draws %v (want 9 tasks, 10 edges): %v", counts, err)
	}
	shot(t, page, "page-mcp-workflow.png")
}
