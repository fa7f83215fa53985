// Command proxyload measures the inbound proxy over loopback (issue 10,
// TR-11): C concurrent clients send agentctx-call-equivalent requests (an
// ECT and a WPT signed, the response ECT verified) through the proxy to a
// plain upstream, and the same number of plain requests go to the upstream
// directly, in one run. It prints throughput, p50 and p99 latency of both,
// the added latency, and the throughput the machine's cores allow for the
// signature operations of one proxied request (measured here, bare).
//
//	go run ./bench/proxyload -clients 64 -requests 4000
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

	"github.com/agentctx/agentctx/bench/internal/load"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

func main() {
	clients := flag.Int("clients", 64, "concurrent clients")
	requests := flag.Int("requests", 4000, "requests per phase")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the proxied phase to this file")
	flag.Parse()
	issuer := testkeys.ES256("load issuer", "td")
	ck := testkeys.EdDSA("load client", "c")
	pk := testkeys.ES256("load proxy", "p")
	const cid, pid = "spiffe://example.com/agent/load", "spiffe://example.com/tool/up"
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	ts.Add(trust.Binding{ID: pid}, pk.Public())
	up := load.Listen(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("ok "), b...))
	}))
	upURL, _ := url.Parse("http://" + up)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	public, _ := url.Parse("http://" + pl.Addr().String())
	h, err := proxy.New(proxy.Config{ServerConfig: transport.ServerConfig{ID: pid, Key: pk, Trust: ts, WITTrust: ts, Clock: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Upstream: upURL, PublicURL: public})
	if err != nil {
		log.Fatal(err)
	}
	go (&http.Server{Handler: h}).Serve(pl)
	wit, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: cid, Key: ck.Public()}, time.Now())
	tr := &http.Transport{MaxIdleConnsPerHost: *clients * 2}
	c, err := transport.NewClient(transport.ClientConfig{ID: cid, Key: ck, WIT: wit, Trust: ts, WITTrust: ts, Clock: time.Now, Base: tr})
	if err != nil {
		log.Fatal(err)
	}
	viaProxy := &http.Client{Transport: c}
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients * 2}}
	do := func(hc *http.Client, u string, signed bool) error {
		ctx := context.Background()
		if signed {
			ctx = transport.WithCall(ctx, &transport.Call{ExecAct: "load", Audience: []string{pid}})
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader("payload"))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// Warm up both paths.
	for i := 0; i < 50; i++ {
		if err := do(viaProxy, public.String()+"/w", true); err != nil {
			log.Fatal(err)
		}
		do(direct, "http://"+up+"/w", false)
	}
	dRate, dP50, dP99 := load.Phase(*clients, *requests, func() error { return do(direct, "http://"+up+"/x", false) })
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
	}
	pRate, pP50, pP99 := load.Phase(*clients, *requests, func() error { return do(viaProxy, public.String()+"/x", true) })
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	perReq := load.SignatureCost(ck, pk)
	cores := runtime.GOMAXPROCS(0)
	allowed := float64(cores) / perReq.Seconds()
	fmt.Printf("cores %d, clients %d, requests %d per phase\n", cores, *clients, *requests)
	fmt.Printf("direct: %8.0f req/s  p50 %v  p99 %v\n", dRate, dP50, dP99)
	fmt.Printf("proxy:  %8.0f req/s  p50 %v  p99 %v\n", pRate, pP50, pP99)
	fmt.Printf("added latency: p50 %v  p99 %v\n", pP50-dP50, pP99-dP99)
	fmt.Printf("signature operations per proxied request: %v of CPU -> %0.f req/s allowed on %d cores; proxy reached %.0f%%\n",
		perReq, allowed, cores, 100*pRate/allowed)
	if *clients > 1 {
		one := 1
		_, s50, _ := load.Phase(one, *requests/8, func() error { return do(viaProxy, public.String()+"/x", true) })
		_, d50, _ := load.Phase(one, *requests/8, func() error { return do(direct, "http://"+up+"/x", false) })
		fmt.Printf("one client: added p50 %v\n", s50-d50)
	}
}
