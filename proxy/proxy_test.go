package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

const (
	clientID = "spiffe://example.com/agent/a"
	proxyID  = "spiffe://example.com/tool/b"
)

var (
	issuer    = testkeys.ES256("proxy issuer", "td-1")
	clientKey = testkeys.EdDSA("proxy client", "a-1")
	proxyKey  = testkeys.ES256("proxy server", "b-1")
	now       = time.Unix(1767225600, 0)
)

func setup(t *testing.T, upstream http.Handler, timeout time.Duration, routes ...proxy.Route) (string, *http.Client, *trust.Set) {
	t.Helper()
	return setupWith(t, upstream, func(c *proxy.Config) { c.Routes, c.UpstreamTimeout = routes, timeout })
}

// setupWith starts the proxy over upstream with its configuration changed
// by set, and returns its URL, a client with the caller's WIT and key, and
// the trust.
func setupWith(t *testing.T, upstream http.Handler, set func(*proxy.Config)) (string, *http.Client, *trust.Set) {
	t.Helper()
	ts := trust.NewSet()
	ts.AddWIT("example.com", issuer.Public())
	ts.Add(trust.Binding{ID: proxyID}, proxyKey.Public())
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL + "/base")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public, _ := url.Parse("http://" + ln.Addr().String())
	clock := func() time.Time { return now }
	cfg := proxy.Config{ServerConfig: transport.ServerConfig{ID: proxyID, Key: proxyKey, Trust: ts, WITTrust: ts, Clock: clock,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Upstream: upURL, PublicURL: public}
	set(&cfg)
	h, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	wit, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: clientID, Key: clientKey.Public()}, now)
	c, err := transport.NewClient(transport.ClientConfig{ID: clientID, Key: clientKey, WIT: wit, Trust: ts, WITTrust: ts, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return public.String(), &http.Client{Transport: c}, ts
}

func do(t *testing.T, hc *http.Client, u, body string) (*http.Response, *transport.Result, error) {
	t.Helper()
	res := &transport.Result{}
	req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{proxyID}, Done: res}), "POST", u, strings.NewReader(body))
	resp, err := hc.Do(req)
	return resp, res, err
}

// TestInboundProxy covers BND-1 (inbound): verify, forward without the
// identity and proof fields with Execution-Context-Verified, sign the ECT
// of the work done with the route's action.
func TestInboundProxy(t *testing.T) {
	var seen http.Header
	var path string
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, path = r.Header.Clone(), r.URL.RequestURI()
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "upstream got "+string(b))
	})
	base, hc, _ := setup(t, up, time.Second, proxy.Route{Method: "POST", Path: "/v1/*", Action: "search"})
	resp, res, err := do(t, hc, base+"/v1/items?q=1", "find")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "upstream got find" || path != "/base/v1/items?q=1" {
		t.Fatalf("%d %s %s", resp.StatusCode, b, path)
	}
	for _, f := range []string{"Workload-Identity-Token", "Authorization", "Signature", "Signature-Input"} {
		if seen.Get(f) != "" {
			t.Fatalf("BND-1: %s reached the upstream", f)
		}
	}
	if v := seen.Get("Execution-Context-Verified"); v != "jti="+res.Claims.ID+"; iss="+clientID {
		t.Fatalf("Execution-Context-Verified %q", v)
	}
	r := res.ResponseECT
	if r == nil || r.Claims.ExecAct != "search" || r.Claims.Issuer != proxyID || r.Claims.Audience[0] != clientID ||
		r.Claims.OutputHash != agentctx.HashBytes(b) || r.Claims.InputHash != agentctx.HashBytes([]byte("find")) {
		t.Fatalf("response ECT %+v", r)
	}
}

// TestUpstreamFailures: an upstream down, slow or closing early is 502 or
// 504 with a problem, and no ECT is signed.
func TestUpstreamFailures(t *testing.T) {
	cases := map[string]struct {
		h      http.Handler
		status int
	}{
		"slow": {http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}), 504},
		"closing early": {http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			w.Write([]byte("partial"))
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		}), 502},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			base, hc, _ := setup(t, c.h, 200*time.Millisecond)
			resp, _, err := do(t, hc, base+"/x", "")
			if err != nil {
				t.Fatal(err)
			}
			var p transport.Problem
			json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != c.status || p.Status != c.status || resp.Header.Get("Execution-Context") != "" {
				t.Fatalf("%d %+v ECT %q", resp.StatusCode, p, resp.Header.Get("Execution-Context"))
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		base, hc, _ := setup(t, http.NotFoundHandler(), time.Second)
		_ = base
		// An upstream URL nobody listens on.
		ts := trust.NewSet()
		ts.AddWIT("example.com", issuer.Public())
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead, _ := url.Parse("http://" + ln.Addr().String())
		ln.Close()
		pl, _ := net.Listen("tcp", "127.0.0.1:0")
		public, _ := url.Parse("http://" + pl.Addr().String())
		h, _ := proxy.New(proxy.Config{ServerConfig: transport.ServerConfig{ID: proxyID, Key: proxyKey, Trust: ts, WITTrust: ts, Clock: func() time.Time { return now },
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Upstream: dead, PublicURL: public})
		srv := &http.Server{Handler: h}
		go srv.Serve(pl)
		defer srv.Close()
		resp, _, err := do(t, hc, public.String()+"/x", "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 502 || resp.Header.Get("Execution-Context") != "" {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
}
