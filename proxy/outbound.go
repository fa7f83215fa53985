package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/transport"
)

// OutboundConfig holds what the outbound proxy needs (BND-2). Client and
// Peers are required.
type OutboundConfig struct {
	// Client is the agent's side of TR-10: its identity, key, WIT, the
	// trust of the servers it calls, its clock.
	Client transport.ClientConfig
	// Peers name the identity of each server by host ("host:port" or
	// "host"): the aud of the agent's ECT for calls to it. A call to a host
	// not listed is refused.
	Peers map[string]string
	// Routes name the exec_act of the agent's calls; unmatched calls get
	// "<METHOD> <host><path>".
	Routes []Route
	// WorkflowID is the agent's workflow (wid of its ECTs); "" for none.
	WorkflowID string
	// Mandate, when set, is the ACT-Mandate chain sent with every call.
	Mandate string
	// Sink receives the agent's ECTs (and the servers' ECTs that name the
	// ledger); nil: none.
	Sink transport.Sink
	// LedgerID is added to the aud of the agent's ECTs when a Sink records
	// them (LED-1).
	LedgerID string
	// MaxBody bounds request and response bodies (transport.DefaultMaxBody).
	MaxBody int64
	// Log receives refused calls (codes and token hashes only); nil:
	// slog.Default().
	Log *slog.Logger
}

// Outbound is the forward proxy of the agent's own calls (BND-2): an agent
// written in any language sets HTTP_PROXY to it (for http:// URLs) or calls
// it as a base URL, <proxy>/<scheme>/<host>/<path> (for https:// too); the
// proxy attaches the agent's ECT, its WIT, a fresh proof and the mandate,
// verifies the ECT (or ACT record) the server returns, and records the
// agent's ECT of each call as the next task of its workflow (pred: its
// previous task). Safe for concurrent use: concurrent calls fork from the
// same previous task.
type Outbound struct {
	cfg  OutboundConfig
	hc   *http.Client
	mu   sync.Mutex
	last []string // the agent's previous task(s)
}

// NewOutbound returns the outbound proxy.
func NewOutbound(cfg OutboundConfig) (*Outbound, error) {
	if len(cfg.Peers) == 0 {
		return nil, fmt.Errorf("%w: the outbound proxy needs the identity of each server it calls (Peers)", transport.ErrConfig)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = transport.DefaultMaxBody
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Client.Base == nil {
		cfg.Client.Base = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: DefaultUpstreamTimeout}
	}
	c, err := transport.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	return &Outbound{cfg: cfg, hc: &http.Client{Transport: c, Timeout: DefaultUpstreamTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// hopFields are not forwarded (RFC 9110 §7.6.1), nor the identity fields
// the proxy sets itself.
var hopFields = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Authenticate", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", transport.HeaderExecutionContext, transport.HeaderACTMandate, transport.HeaderWIT, transport.HeaderWPTLegacy,
	"Authorization", "Signature", "Signature-Input"}

// target reads the URL a request is for: the absolute form of a proxy
// request, or the base-URL form /<scheme>/<host>/<path>.
func target(r *http.Request) (*url.URL, error) {
	if r.URL.IsAbs() {
		return r.URL, nil
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 2 || (parts[0] != "http" && parts[0] != "https") || parts[1] == "" {
		return nil, errors.New("not a proxy request: use HTTP_PROXY, or the base-URL form /<http|https>/<host>/<path>")
	}
	u := &url.URL{Scheme: parts[0], Host: parts[1], Path: "/", RawQuery: r.URL.RawQuery}
	if len(parts) == 3 {
		u.Path = "/" + parts[2]
	}
	return u, nil
}

func (o *Outbound) action(r *http.Request, u *url.URL) string {
	probe := &http.Request{Method: r.Method, URL: &url.URL{Path: u.Path}}
	for _, rt := range o.cfg.Routes {
		if rt.match(probe) {
			return rt.Action
		}
	}
	return r.Method + " " + u.Host + u.Path
}

// ServeHTTP forwards one call of the agent (BND-2).
func (o *Outbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-2", "", "the outbound proxy adds headers, which a CONNECT tunnel hides: call https:// URLs through the base-URL form /https/<host>/<path>"), http.StatusMethodNotAllowed)
		return
	}
	u, err := target(r)
	if err != nil {
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-2", "", "%v", err), http.StatusBadRequest)
		return
	}
	peer, ok := o.cfg.Peers[u.Host]
	if !ok {
		peer, ok = o.cfg.Peers[u.Hostname()]
	}
	if !ok {
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeAudienceMismatch, "BND-2", "aud", "no server identity is configured for %s (--peer HOST=ID)", u.Host), http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, o.cfg.MaxBody+1))
	if err != nil || int64(len(body)) > o.cfg.MaxBody {
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeTooLarge, "BND-4", "", "the request body is unreadable or over %d bytes", o.cfg.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	aud := []string{peer}
	if o.cfg.LedgerID != "" && o.cfg.Sink != nil {
		aud = append(aud, o.cfg.LedgerID)
	}
	o.mu.Lock()
	pred := slices.Clone(o.last)
	o.mu.Unlock()
	res := &transport.Result{}
	call := &transport.Call{ExecAct: o.action(r, u), Audience: aud, Pred: pred, WorkflowID: o.cfg.WorkflowID, Mandate: o.cfg.Mandate, Done: res}
	out, err := http.NewRequestWithContext(transport.WithCall(r.Context(), call), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		transport.WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeMalformed, "BND-2", "", "%v", err), http.StatusBadRequest)
		return
	}
	for k, vs := range r.Header {
		out.Header[k] = vs
	}
	for _, f := range hopFields {
		out.Header.Del(f)
	}
	resp, err := o.hc.Do(out)
	var ae *agentctx.Error
	if res.ECT != "" && (err == nil || errors.As(err, &ae)) {
		// The server received the agent's task (it answered, perhaps with
		// something that did not verify): it is recorded, and it is the
		// next call's predecessor. A call that never reached it is not.
		o.record(r.Context(), res)
	}
	if err != nil {
		o.cfg.Log.Info("outbound call refused", "host", u.Host, "code", agentctx.CodeOf(err))
		status := http.StatusBadGateway
		if !errors.As(err, &ae) {
			err = &agentctx.Error{Code: agentctx.CodeInternal, Rule: "BND-2", Message: "the server could not be reached or did not answer in time"}
		}
		transport.WriteProblemStatus(w, err, status)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// record moves the workflow on to the call's task and hands the tokens
// that name the ledger to the sink: the agent's ECT, then the server's.
func (o *Outbound) record(ctx context.Context, res *transport.Result) {
	o.mu.Lock()
	o.last = []string{res.Claims.ID}
	o.mu.Unlock()
	if o.cfg.Sink == nil {
		return
	}
	toks := []string{res.ECT}
	if r := res.ResponseECT; r != nil && slices.Contains(r.Claims.Audience, o.cfg.LedgerID) {
		toks = append(toks, res.Response)
	}
	if res.Record != "" {
		toks = append(toks, res.Record)
	}
	if err := o.cfg.Sink.Append(ctx, toks); err != nil {
		o.cfg.Log.Warn("the spool refused a token", "err", err)
	}
}
