package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/httpsig"
	"github.com/agentctx/agentctx/replay"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

// ClientConfig holds what the client RoundTripper needs. ID, Key, WIT,
// Trust, WITTrust and Clock are required.
type ClientConfig struct {
	// ID is the caller's identity: the iss of its ECTs and the sub of its
	// WIT. Required.
	ID string
	// Key is the caller's workload key, the one its WIT binds (cnf.jwk):
	// it signs the ECTs and the proofs. Required.
	Key *trust.SigningKey
	// WIT is the caller's WIT, sent as it is. Required.
	WIT string
	// Trust resolves the keys of the servers whose response ECTs are
	// verified (when they send no WIT); WITTrust their WITs. Required.
	Trust    trust.Resolver
	WITTrust trust.WITResolver
	// Clock returns the current time. Required.
	Clock func() time.Time
	// Proof is the proof sent: a WPT (the default) or a WIMSE signature.
	Proof Proof
	// SignResponse asks for a signed response and refuses an unsigned one.
	SignResponse bool
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// MaxBody bounds the bodies read for hashing; 0 means DefaultMaxBody.
	MaxBody int64
}

// Call describes the caller's task for one request, attached to the
// request's context with WithCall.
type Call struct {
	ExecAct    string   // the caller's action (required)
	Audience   []string // the ECT's aud: the server's identity, the ledger...
	Pred       []string // predecessor jtis
	PredTokens []string // predecessor ECTs sent inline after the caller's
	WorkflowID string
	Mandate    string // an ACT-Mandate chain to send, leaf first
	// Done receives what the RoundTripper sent and verified.
	Done *Result
}

// Result is what one call sent and received.
type Result struct {
	ECT         string      // the caller's ECT, as sent
	Claims      *ect.Claims // its claims
	ResponseECT *ect.Result // the server's verified ECT; nil when it sent none
	Response    string      // that ECT as received
	// ResponseRecord is the server's verified ACT record, for a call sent
	// with a mandate (the server signs a record instead of an ECT); Record
	// is the token as received.
	ResponseRecord *act.Result
	Record         string
	Signed         bool // the response signature was verified
}

type callKey struct{}

// CallOf returns the call ctx carries (WithCall), nil when none.
func CallOf(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// WithCall returns ctx carrying the task of the call.
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// Client is the RoundTripper of TR-10. It is safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	wits *wimse.Validator
	seen *replay.Cache
	ectV *ect.Verifier // response ECTs of servers without a WIT
	keys *trust.KeyCache
}

// NewClient checks cfg and returns the RoundTripper.
func NewClient(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.ID == "" || cfg.Key == nil || cfg.WIT == "":
		return nil, fmt.Errorf("%w: ID, Key and WIT are required (the caller's identity, workload key and WIT)", ErrConfig)
	case cfg.Trust == nil || cfg.WITTrust == nil:
		return nil, fmt.Errorf("%w: Trust and WITTrust are required (to verify what the server returns)", ErrConfig)
	case cfg.Clock == nil:
		return nil, fmt.Errorf("%w: Clock is required", ErrConfig)
	}
	if cfg.Base == nil {
		cfg.Base = http.DefaultTransport
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	c := &Client{cfg: cfg, seen: replay.New(1 << 16), keys: trust.NewKeyCache()}
	var err error
	if c.wits, err = wimse.NewValidator(wimse.Config{Trust: cfg.WITTrust, Clock: cfg.Clock}); err != nil {
		return nil, err
	}
	if c.ectV, err = ect.NewVerifier(ect.Config{Trust: cfg.Trust, Audience: cfg.ID, Clock: cfg.Clock, Replay: c.seen, KeyCache: c.keys}); err != nil {
		return nil, err
	}
	return c, nil
}

// RoundTrip attaches the caller's ECT (with inp_hash of the exact body),
// WIT and proof, sends the request, and verifies the response's ECT (and
// its signature when asked) before returning it (TR-10). A refusal by the
// server is returned as the response (its problem details in the body);
// a response that fails verification is an error.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	cfg := &c.cfg
	call, _ := req.Context().Value(callKey{}).(*Call)
	if call == nil || call.ExecAct == "" {
		return nil, fmt.Errorf("%w: the request carries no transport.Call with its exec_act (WithCall)", ErrConfig)
	}
	req = req.Clone(req.Context())
	body, err := readBody(req, cfg.MaxBody)
	if err != nil {
		return nil, err
	}
	now := cfg.Clock()
	claims := &ect.Claims{Issuer: cfg.ID, Audience: call.Audience, ExecAct: call.ExecAct, Pred: call.Pred, WorkflowID: call.WorkflowID,
		InputHash: agentctx.HashBytes(body)}
	tok, err := ect.Create(cfg.Key, claims, now)
	if err != nil {
		return nil, err
	}
	field := strings.Join(append([]string{tok}, call.PredTokens...), ", ")
	req.Header.Set(HeaderExecutionContext, field) // SPEC: TR-1 one field line
	if call.Mandate != "" {
		req.Header.Set(HeaderACTMandate, call.Mandate)
	}
	req.Header.Set(HeaderWIT, cfg.WIT)
	audience := *req.URL
	audience.RawQuery, audience.Fragment, audience.ForceQuery = "", "", false
	if len(body) > 0 {
		httpsig.SetContentDigest(req.Header, body)
	}
	nonce := ""
	alg := cfg.Key.Alg()
	switch cfg.Proof {
	case ProofHTTPSig:
		salg, err := httpsig.AlgFor(alg)
		if err != nil {
			return nil, err
		}
		if nonce, err = httpsig.SignRequest(req, audience.String(), cfg.SignResponse, salg, cfg.Key.Signer(), now, time.Minute); err != nil {
			return nil, err
		}
	default:
		other := map[string]string{"execution-context": field}
		if call.Mandate != "" {
			other["act-mandate"] = call.Mandate
		}
		wpt, err := wimse.CreateWPT(cfg.Key.Signer(), alg, wimse.WPTClaims{Audience: audience.String(), WIT: cfg.WIT, Other: other}, now)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "WPT "+wpt)
	}
	resp, err := cfg.Base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rbody, err := io.ReadAll(io.LimitReader(resp.Body, cfg.MaxBody+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(rbody)) > cfg.MaxBody {
		return nil, agentctx.Errorf(agentctx.CodeTooLarge, "TR-10", "", "the response body is over %d bytes", cfg.MaxBody)
	}
	resp.Body = io.NopCloser(bytes.NewReader(rbody))
	res := &Result{ECT: tok, Claims: claims}
	if call.Done != nil {
		*call.Done = *res
	}
	if resp.StatusCode >= 400 && resp.Header.Get(HeaderExecutionContext) == "" {
		return resp, nil // a refusal: the caller reads the problem
	}
	if err := c.verifyResponse(req, body, resp, rbody, nonce, res); err != nil {
		return nil, err
	}
	if call.Done != nil {
		*call.Done = *res
	}
	return resp, nil
}

// verifyResponse checks the response signature (when asked) and the
// server's ECT.
func (c *Client) verifyResponse(req *http.Request, reqBody []byte, resp *http.Response, body []byte, nonce string, res *Result) error {
	cfg := &c.cfg
	ctx := req.Context()
	var serverWIT *wimse.WIT
	if w := resp.Header.Get(HeaderWIT); w != "" {
		var err error
		if serverWIT, err = c.wits.ValidateWIT(ctx, w); err != nil {
			return err
		}
	}
	if cfg.SignResponse {
		if serverWIT == nil {
			return agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "the response is not signed (no WIT), though a signed response was asked for")
		}
		m := httpsig.Message{Request: req, Response: resp}
		s, err := httpsig.Find(m)
		if err != nil {
			return err
		}
		if s == nil {
			return agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "the response is not signed, though a signed response was asked for")
		}
		if _, err := httpsig.VerifyWIMSE(m, s, serverWIT.KeyAlg, serverWIT.Key.Public, body, httpsig.Policy{Clock: cfg.Clock, Skew: time.Minute, ReqNonce: nonce}); err != nil {
			return err
		}
		res.Signed = true
	}
	if call, _ := req.Context().Value(callKey{}).(*Call); call != nil && call.Mandate != "" {
		return c.verifyRecord(req, reqBody, resp, body, serverWIT, call, res)
	}
	f := resp.Header.Get(HeaderExecutionContext)
	if f == "" {
		f = resp.Trailer.Get(HeaderExecutionContext) // a streamed response (BND-1)
	}
	if f == "" {
		return agentctx.Errorf(agentctx.CodeMissingClaim, "TR-10", "", "the response carries no Execution-Context")
	}
	v := c.ectV
	if serverWIT != nil {
		var err error
		if v, err = ect.NewVerifier(ect.Config{Trust: serverWIT.Resolver(), Audience: cfg.ID, Clock: cfg.Clock, Replay: c.seen, KeyCache: c.keys}); err != nil {
			return err
		}
	}
	r, err := v.Verify(ctx, splitValues(f)[0])
	if err != nil {
		return err
	}
	// The server's ECT must answer this call: pred names the caller's task
	// and out_hash the exact body.
	if len(r.Claims.Pred) == 0 || !strings.EqualFold(r.Claims.Pred[0], res.Claims.ID) {
		return agentctx.Errorf(agentctx.CodeDAGUnknownPred, "TR-10", "pred", "the response ECT does not follow this call's task")
	}
	// An MCP tool call's out_hash covers its response message, which may
	// arrive inside an SSE stream (BND-5).
	if r.Claims.OutputHash != "" && r.Claims.OutputHash != agentctx.HashBytes(body) &&
		r.Claims.OutputHash != agentctx.HashBytes(MCPResponseMessage(resp.Header.Get("Content-Type"), body, reqBody)) {
		return agentctx.Errorf(agentctx.CodeInvalidClaim, "TR-10", "out_hash", "the response body does not match the response ECT's out_hash")
	}
	res.ResponseECT, res.Response = r, splitValues(f)[0]
	return nil
}

// verifyRecord checks the ACT record a server returns for a call made
// under a mandate (TR-9, TR-10): signed by the mandate's sub, the same
// claims as the mandate (ACT-P3), following this call's task, out_hash of
// the exact body (or of the MCP response message).
func (c *Client) verifyRecord(req *http.Request, reqBody []byte, resp *http.Response, body []byte, serverWIT *wimse.WIT, call *Call, res *Result) error {
	cfg := &c.cfg
	f := strings.TrimSpace(resp.Header.Get(HeaderACTRecord))
	if f == "" {
		f = strings.TrimSpace(resp.Trailer.Get(HeaderACTRecord)) // a streamed response (BND-1)
	}
	if f == "" {
		return agentctx.Errorf(agentctx.CodeMissingClaim, "TR-10", "", "the response to a call under a mandate carries no ACT-Record")
	}
	// The record is the server's (its WIT's key, or the trust); its
	// mandate may be the caller's own (its workload key) or a delegator's.
	own := trust.NewSet()
	if err := own.Add(trust.Binding{ID: cfg.ID}, cfg.Key.Public()); err != nil {
		return err
	}
	tr := trust.Multi(own, cfg.Trust)
	if serverWIT != nil {
		tr = trust.Multi(serverWIT.Resolver(), own, cfg.Trust)
	}
	v, err := act.NewVerifier(act.Config{Trust: tr, Audience: cfg.ID, Clock: cfg.Clock, KeyCache: c.keys})
	if err != nil {
		return err
	}
	r, err := v.VerifyRecord(req.Context(), f, splitValues(call.Mandate))
	if err != nil {
		return err
	}
	rc := r.Record
	if rc == nil || len(rc.Pred) == 0 || !strings.EqualFold(rc.Pred[0], res.Claims.ID) {
		return agentctx.Errorf(agentctx.CodeDAGUnknownPred, "TR-10", "pred", "the ACT record does not follow this call's task")
	}
	if rc.OutputHash != "" && rc.OutputHash != agentctx.HashBytes(body) &&
		rc.OutputHash != agentctx.HashBytes(MCPResponseMessage(resp.Header.Get("Content-Type"), body, reqBody)) {
		return agentctx.Errorf(agentctx.CodeInvalidClaim, "TR-10", "out_hash", "the response body does not match the ACT record's out_hash")
	}
	res.ResponseRecord, res.Record = r, f
	return nil
}
