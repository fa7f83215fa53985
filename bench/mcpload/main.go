// Command mcpload measures the MCP path of the proxy (issue 13, section
// 5): C concurrent clients send tools/call requests (the caller's ECT and
// WPT signed, the response ECT verified) through agentctx's proxy in MCP
// mode to a Go SDK MCP server (stateless, SSE replies), and the same
// number of plain tools/call requests go to the server directly, in one
// run. It prints the rate, p50 and p99 of both, the added latency at C
// clients and at one, and the rate the signature operations of one call
// allow on this machine's cores.
//
//	go run ./bench/mcpload -clients 64 -requests 4000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentctx/agentctx/bench/internal/load"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

const call = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`

func main() {
	clients := flag.Int("clients", 64, "concurrent clients")
	requests := flag.Int("requests", 4000, "requests per phase")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the proxied phase to this file")
	flag.Parse()
	issuer := testkeys.ES256("mcpload issuer", "td")
	ck := testkeys.EdDSA("mcpload client", "c")
	pk := testkeys.EdDSA("mcpload proxy", "p")
	const cid, pid = "spiffe://example.com/agent/load", "spiffe://example.com/tool/echo"
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	ts.Add(trust.Binding{ID: pid}, pk.Public())

	server := sdk.NewServer(&sdk.Implementation{Name: "echo", Version: "1"}, nil)
	sdk.AddTool(server, &sdk.Tool{Name: "echo", Description: "echoes"}, func(_ context.Context, _ *sdk.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*sdk.CallToolResult, any, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
	})
	up := load.Listen(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return server }, &sdk.StreamableHTTPOptions{Stateless: true}))
	upURL, _ := url.Parse("http://" + up)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	public, _ := url.Parse("http://" + pl.Addr().String())
	h, err := proxy.New(proxy.Config{ServerConfig: transport.ServerConfig{ID: pid, Key: pk, Trust: ts, WITTrust: ts, Clock: time.Now,
		Log: slog.New(slog.DiscardHandler)}, Upstream: upURL, PublicURL: public, MCP: true})
	if err != nil {
		log.Fatal(err)
	}
	go (&http.Server{Handler: h}).Serve(pl)
	wit, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: cid, Key: ck.Public()}, time.Now())
	c, err := transport.NewClient(transport.ClientConfig{ID: cid, Key: ck, WIT: wit, Trust: ts, WITTrust: ts, Clock: time.Now,
		Base: &http.Transport{MaxIdleConnsPerHost: *clients * 2}})
	if err != nil {
		log.Fatal(err)
	}
	viaProxy := &http.Client{Transport: c}
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients * 2}}
	do := func(hc *http.Client, u string, signed bool) error {
		ctx := context.Background()
		if signed {
			ctx = transport.WithCall(ctx, &transport.Call{ExecAct: "ask", Audience: []string{pid}})
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(call))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "hello") {
			return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
		}
		return nil
	}
	viaURL, directURL := public.String()+"/mcp", "http://"+up+"/mcp"
	for i := 0; i < 50; i++ {
		if err := do(viaProxy, viaURL, true); err != nil {
			log.Fatal(err)
		}
		if err := do(direct, directURL, false); err != nil {
			log.Fatal(err)
		}
	}
	dRate, dP50, dP99 := load.Phase(*clients, *requests, func() error { return do(direct, directURL, false) })
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
	}
	pRate, pP50, pP99 := load.Phase(*clients, *requests, func() error { return do(viaProxy, viaURL, true) })
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	perReq := load.SignatureCost(ck, pk)
	cores := runtime.GOMAXPROCS(0)
	allowed := float64(cores) / perReq.Seconds()
	_, d1, _ := load.Phase(1, *requests/8, func() error { return do(direct, directURL, false) })
	_, p1, _ := load.Phase(1, *requests/8, func() error { return do(viaProxy, viaURL, true) })
	fmt.Printf("cores %d, clients %d, requests %d per phase\n", cores, *clients, *requests)
	fmt.Printf("direct tools/call: %8.0f req/s  p50 %v  p99 %v\n", dRate, dP50, dP99)
	fmt.Printf("via proxy --mcp:   %8.0f req/s  p50 %v  p99 %v\n", pRate, pP50, pP99)
	fmt.Printf("added latency at %d clients: p50 %v  p99 %v; at one client: p50 %v\n", *clients, pP50-dP50, pP99-dP99, p1-d1)
	fmt.Printf("signature operations per call: %v of CPU -> %.0f req/s allowed on %d cores; the proxy path reached %.0f%%\n",
		perReq, allowed, cores, 100*pRate/allowed)
}
