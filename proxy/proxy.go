// Package proxy is the sidecar of spec/bindings.md (BND-1), inbound mode:
// it stands in front of a plain HTTP service, verifies each request's WIMSE
// identity, proof and ECTs with the transport middleware, forwards the
// request to the upstream without the identity and proof fields and with
// Execution-Context-Verified added, and signs the ECT of the work the
// upstream did into the response. An upstream that is down, slow or closes
// early is answered with 502 or 504 and a problem, and no ECT is signed for
// work that did not happen.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/transport/mcp"
)

// Defaults.
const (
	DefaultListen          = "127.0.0.1:8081"
	DefaultUpstreamTimeout = 30 * time.Second
)

// Route names the exec_act of requests: Method ("" or "*" for any) and
// Path (exact, or a prefix when it ends in "/*").
type Route struct {
	Method, Path, Action string
}

// ParseRoute reads "METHOD /path=ACTION".
func ParseRoute(s string) (Route, error) {
	spec, action, ok := strings.Cut(s, "=")
	method, path, ok2 := strings.Cut(strings.TrimSpace(spec), " ")
	if !ok || !ok2 || action == "" || !strings.HasPrefix(strings.TrimSpace(path), "/") {
		return Route{}, errors.New(`a route is "METHOD /path=ACTION" (METHOD may be *; /path/* matches a prefix)`)
	}
	return Route{Method: strings.ToUpper(strings.TrimSpace(method)), Path: strings.TrimSpace(path), Action: strings.TrimSpace(action)}, nil
}

func (rt Route) match(r *http.Request) bool {
	if rt.Method != "*" && rt.Method != "" && rt.Method != r.Method {
		return false
	}
	if p, ok := strings.CutSuffix(rt.Path, "/*"); ok {
		return r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/")
	}
	return r.URL.Path == rt.Path
}

// Config holds what the proxy needs: the middleware's configuration (its
// Audience and Action are set by the proxy) and the upstream.
type Config struct {
	transport.ServerConfig
	// Upstream is the base URL requests are forwarded to: a request for
	// path P goes to Upstream + P. Required.
	Upstream *url.URL
	// PublicURL is the base URL callers address: the audience a proof must
	// name for path P is PublicURL + P, without the query. Required.
	PublicURL *url.URL
	// Routes name the exec_act of the response ECT; unmatched requests get
	// "<METHOD> <path>".
	Routes []Route
	// UpstreamTimeout bounds each upstream exchange; 0 means
	// DefaultUpstreamTimeout.
	UpstreamTimeout time.Duration
	// Client sends to the upstream; nil builds one with UpstreamTimeout.
	Client http.RoundTripper
	// MCP reads the JSON-RPC of an MCP server's Streamable HTTP endpoint
	// (BND-5, BND-6): tools/call is the task mcp.<tool>, with out_hash over
	// its response message; other methods pass without a record.
	MCP bool
}

// Fields removed before forwarding: the caller's identity and proof.
var identityFields = []string{transport.HeaderWIT, transport.HeaderWPTLegacy, "Authorization", "Signature", "Signature-Input", "Execution-Context-Verified"}

// New returns the proxy's handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Upstream == nil || cfg.PublicURL == nil {
		return nil, fmt.Errorf("%w: Upstream and PublicURL are required", transport.ErrConfig)
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	public := strings.TrimSuffix(cfg.PublicURL.String(), "/")
	cfg.Audience = func(r *http.Request) string { return public + r.URL.EscapedPath() }
	routes := cfg.Routes
	cfg.Action = func(r *http.Request) string {
		for _, rt := range routes {
			if rt.match(r) {
				return rt.Action
			}
		}
		return r.Method + " " + r.URL.Path
	}

	base := cfg.Client
	if base == nil {
		base = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			ResponseHeaderTimeout: cfg.UpstreamTimeout,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	maxBody := cfg.MaxBody
	if maxBody == 0 {
		maxBody = transport.DefaultMaxBody
	}
	up := cfg.Upstream
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up) // <upstream>P, as for any reverse proxy
			for _, f := range identityFields {
				pr.Out.Header.Del(f)
			}
			if v := transport.FromContext(pr.In.Context()); v != nil && v.ECT != nil {
				c := v.ECT.Claims
				val := "jti=" + c.ID + "; iss=" + c.Issuer
				if c.WorkflowID != "" {
					val += "; wid=" + c.WorkflowID
				}
				pr.Out.Header.Set("Execution-Context-Verified", val)
			}
		},
		Transport: &buffering{base: base, max: maxBody, timeout: cfg.UpstreamTimeout},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// SPEC: issue 10, no ECT for work that did not happen.
			transport.SkipTask(r.Context())
			status, what := http.StatusBadGateway, "the upstream failed"
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
				status, what = http.StatusGatewayTimeout, "the upstream did not answer in time"
			}
			transport.WriteProblemStatus(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "BND-1", Message: what}, status)
		},
	}
	if cfg.MCP {
		// SPEC: BND-5, BND-6 the MCP binding in front of the reverse proxy.
		h, err := mcp.NewHandler(cfg.ServerConfig, rp)
		if err != nil {
			return nil, err
		}
		return h, nil
	}
	mw, err := transport.NewMiddleware(cfg.ServerConfig)
	if err != nil {
		return nil, err
	}
	return mw.Wrap(rp), nil
}

// buffering reads the whole upstream response before the reverse proxy
// sees it, so that an upstream closing early is an error (502) rather
// than a truncated success, and the body can be hashed.
type buffering struct {
	base    http.RoundTripper
	max     int64
	timeout time.Duration
}

func (b *buffering) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(r.Context())
	var late atomic.Bool
	timer := time.AfterFunc(b.timeout, func() { late.Store(true); cancel() })
	resp, err := b.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		timer.Stop()
		cancel()
		if late.Load() {
			return nil, fmt.Errorf("the upstream did not answer within %v: %w", b.timeout, context.DeadlineExceeded)
		}
		return nil, err
	}
	// SPEC: BND-1 an event stream, a chunked body or one over the cap passes
	// through as it comes (the middleware hashes it as it passes and puts the
	// token in a trailer); the exchange timeout then covers only the headers.
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "text/event-stream" || resp.ContentLength < 0 || resp.ContentLength > b.max {
		timer.Stop()
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	defer func() { timer.Stop(); cancel() }()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, b.max+1))
	if err != nil {
		if late.Load() {
			return nil, fmt.Errorf("the upstream did not answer within %v: %w", b.timeout, context.DeadlineExceeded)
		}
		return nil, err
	}
	if int64(len(body)) > b.max {
		return nil, fmt.Errorf("the upstream response is over %d bytes", b.max)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// cancelOnClose ends a streamed exchange's context with its body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
