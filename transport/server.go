package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentctx/agentctx/internal/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"hash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/dag"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/httpsig"
	"github.com/agentctx/agentctx/replay"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

// ServerConfig holds what the middleware needs. ID, Key, Trust, WITTrust,
// Audience and Clock are required; zero tunables take the defaults.
type ServerConfig struct {
	// ID is the server's identity: the audience its callers' ECTs name, and
	// the iss of the ECTs it signs. Required.
	ID string
	// Key signs the server's ECTs and, with WIT, its response signatures.
	// Required.
	Key *trust.SigningKey
	// WIT is the server's own WIT (for signed responses); "" when it has
	// none.
	WIT string
	// Trust resolves the keys of ECT and ACT issuers without a WIT (and of
	// inline predecessors). Required.
	Trust trust.Resolver
	// WITTrust resolves the WIT issuer keys of each trust domain. Required.
	WITTrust trust.WITResolver
	// Audience returns the URI a request's proof must name (the configured
	// public URL of the path, without query): never Host (TR-6). Required.
	Audience func(r *http.Request) string
	// Clock returns the current time. Required.
	Clock func() time.Time

	Policy Policy // Require by default
	// PolicyFor, when set, gives the policy of one request (the MCP proxy
	// relaxes it for initialize, tools/list and notifications); nil: Policy.
	PolicyFor func(r *http.Request) Policy
	Proof     Proof // ProofAny by default
	// SignResponses signs every response, not only when the request asks.
	SignResponses bool
	// Action names the response ECT's exec_act; nil means "<METHOD> <path>".
	Action func(r *http.Request) string
	// Approve is asked for the human approval of an action that a
	// request's ACT mandate lists in oversight.approval_required (ACT-M10,
	// ACT-V3), and only then: it returns the approval the integrator holds
	// for that mandate and action (from its approval service, a queue, a
	// person), or nil when there is none yet. An error is a failure to ask
	// (the request gets a 500, nothing is run). nil: every such action is
	// refused with approval_required.
	Approve func(r *http.Request, m *act.Mandate, action string) (*act.Approval, error)
	// Sink receives every token the middleware signs; nil: none.
	Sink Sink
	// LedgerID, when the signed tokens go to an audit ledger, is added to
	// the aud of every ECT the middleware signs (LED-1: a ledger takes only
	// the ECTs that name it).
	LedgerID string
	// Replay is the cache of ECT jtis; Nonces of WPT jtis and signature
	// nonces. nil gives the middleware its own.
	Replay, Nonces *replay.Cache
	// KnownOther are further fields a WPT oth may cover.
	KnownOther []string
	// Legacy accepts the older forms (wpt-01 Workload-Proof-Token and ath,
	// http-signature -06 @request-target).
	Legacy bool
	// MaxValues and MaxFieldSize bound Execution-Context (TR-1); MaxBody
	// bounds the request and response bodies the middleware hashes.
	MaxValues, MaxFieldSize int
	MaxBody                 int64
	// StreamAbove is the response size beyond which a response that need
	// not be signed streams through, its token in a trailer, instead of
	// being held (DefaultStreamAbove); a response to be signed is held up
	// to MaxBody.
	StreamAbove int64
	// Log receives one line per refused request (codes, jti and token
	// hashes only); nil: slog's default.
	Log *slog.Logger
	// TracerProvider records a span per request and per verification
	// (BND-9); nil: tracing is off, at no cost.
	TracerProvider trace.TracerProvider
	// TraceClaim puts the request span's traceparent into the signed ECT's
	// ect_ext.traceparent (BND-10), when tracing is on.
	TraceClaim bool
}

// Verified is what the middleware verified about a request, handed to the
// handler through the request's context (FromContext).
type Verified struct {
	WIT          *wimse.WIT    // the caller's WIT; nil without one (policy)
	Proof        string        // "wpt", "httpsig" or "" (none)
	ECT          *ect.Result   // the caller's ECT; nil without one
	Preds        []*ect.Result // inline predecessor ECTs (TR-1)
	Mandate      *act.Result   // a verified ACT mandate (ACT-Mandate); nil without one
	Record       *act.Result   // a verified ACT record (ACT-Record); nil without one
	Body         []byte        // the exact request body
	raw          []string      // the verified ECTs as sent: the caller's, then its inline predecessors
	chain        []string      // the verified ACT-Mandate chain as sent, leaf first
	SignResponse bool          // the caller asked for a signed response
	nonce        string
	task         *Task
	skip         bool
	mu           sync.Mutex
}

// Task is what the handler did, for the response ECT; zero fields take the
// defaults (exec_act from the configuration, pred the caller's ECT).
type Task struct {
	ExecAct string
	Pred    []string
	Ext     []byte // ect_ext JSON object
	// OutputHash, when set, is the out_hash instead of the hash of the
	// whole response body (MCP: the JSON-RPC response message inside an
	// SSE stream, BND-5).
	OutputHash string
	// Failed, when set, is the error code of a task that failed although
	// the response is a success at the HTTP level (an MCP tool error); an
	// ACT record then says failed with this err.code. Without it a record
	// is failed with the HTTP status as its code for a non-2xx response.
	Failed string
}

type ctxKey struct{}

// FromContext returns the verified request of ctx, or nil.
func FromContext(ctx context.Context) *Verified {
	v, _ := ctx.Value(ctxKey{}).(*Verified)
	return v
}

// NewContext returns ctx carrying v, for a binding that hands a request
// the middleware verified to code running under another context (the MCP
// SDK's tool handlers, which FromContext then serves).
func NewContext(ctx context.Context, v *Verified) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// TaskOf returns a copy of the task set on ctx's request (SetTask), nil
// when none was.
func TaskOf(ctx context.Context) *Task {
	v := FromContext(ctx)
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.task == nil {
		return nil
	}
	t := *v.task
	return &t
}

// SetTask tells the middleware what task the handler performed.
func SetTask(ctx context.Context, t Task) {
	if v := FromContext(ctx); v != nil {
		v.mu.Lock()
		v.task = &t
		v.mu.Unlock()
	}
}

// SkipTask tells the middleware that no work was done (an upstream that
// failed): no ECT is signed for the response.
func SkipTask(ctx context.Context) {
	if v := FromContext(ctx); v != nil {
		v.mu.Lock()
		v.skip = true
		v.mu.Unlock()
	}
}

// Middleware is the server side of TR-9. It is safe for concurrent use.
type Middleware struct {
	cfg  ServerConfig
	wits *wimse.Validator
	ectV *ect.Verifier // evidence of inline predecessors and ECTs without a WIT
	actV *act.Verifier
	tr   *telemetry.Tracer
	keys *trust.KeyCache // shared by every verifier of the middleware, per request too
}

// ErrConfig is wrapped by every configuration error of NewMiddleware.
var ErrConfig = errors.New("transport: invalid configuration")

// NewMiddleware checks cfg and returns the middleware.
func NewMiddleware(cfg ServerConfig) (*Middleware, error) {
	switch {
	case cfg.ID == "":
		return nil, fmt.Errorf("%w: ID is required (the server's identity)", ErrConfig)
	case cfg.Key == nil:
		return nil, fmt.Errorf("%w: Key is required (signs the response ECTs)", ErrConfig)
	case cfg.Trust == nil || cfg.WITTrust == nil:
		return nil, fmt.Errorf("%w: Trust and WITTrust are required", ErrConfig)
	case cfg.Audience == nil:
		return nil, fmt.Errorf("%w: Audience is required (the configured URI proofs must name)", ErrConfig)
	case cfg.Clock == nil:
		return nil, fmt.Errorf("%w: Clock is required", ErrConfig)
	}
	if cfg.MaxValues == 0 {
		cfg.MaxValues = DefaultMaxValues
	}
	if cfg.MaxFieldSize == 0 {
		cfg.MaxFieldSize = DefaultMaxFieldSize
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.StreamAbove <= 0 {
		cfg.StreamAbove = DefaultStreamAbove
	}
	if cfg.Replay == nil {
		cfg.Replay = replay.New(replay.DefaultCapacity)
	}
	if cfg.Nonces == nil {
		cfg.Nonces = replay.New(replay.DefaultCapacity)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Action == nil {
		cfg.Action = func(r *http.Request) string { return r.Method + " " + r.URL.Path }
	}
	m := &Middleware{cfg: cfg, keys: trust.NewKeyCache()}
	m.tr = telemetry.New(cfg.TracerProvider)
	var err error
	if m.wits, err = wimse.NewValidator(wimse.Config{Trust: cfg.WITTrust, Clock: cfg.Clock, Replay: cfg.Nonces, KnownOther: cfg.KnownOther, Legacy: cfg.Legacy, KeyCache: m.keys}); err != nil {
		return nil, err
	}
	if m.ectV, err = ect.NewVerifier(ect.Config{Trust: cfg.Trust, Audience: cfg.ID, Clock: cfg.Clock, Replay: cfg.Replay, KeyCache: m.keys}); err != nil {
		return nil, err
	}
	if m.actV, err = act.NewVerifier(act.Config{Trust: cfg.Trust, Audience: cfg.ID, Clock: cfg.Clock, Replay: cfg.Replay, KeyCache: m.keys}); err != nil {
		return nil, err
	}
	return m, nil
}

// Wrap returns next behind the middleware.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sp telemetry.Span
		if m.tr.Enabled() {
			// SPEC: BND-9 a span per request, under the caller's traceparent; it never touches verification.
			in := telemetry.Incoming(r.Header)
			ctx := r.Context()
			if in.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, in)
			}
			ctx, sp = m.tr.Start(ctx, "agentctx.request", []trace.SpanContext{in}, attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path))
			r = r.WithContext(ctx)
		}
		v, err := m.traceVerify(r)
		if err != nil {
			m.cfg.Log.Info("request refused", "method", r.Method, "path", r.URL.Path, "code", agentctx.CodeOf(err), "rule", ruleOf(err))
			sp.End(string(agentctx.CodeOf(err)))
			WriteProblem(w, err)
			return
		}
		if m.tr.Enabled() {
			sp.Set(m.spanAttrs(r, v)...)
			defer sp.End("ok")
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, v))
		trailer := HeaderExecutionContext
		if v.Mandate != nil {
			trailer = HeaderACTRecord
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK, max: m.cfg.MaxBody, w: w, trailer: trailer,
			canStream: !v.SignResponse && !m.cfg.SignResponses}
		if rec.canStream {
			rec.max = min(m.cfg.MaxBody, m.cfg.StreamAbove)
		}
		next.ServeHTTP(rec, r)
		if rec.overflow {
			WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeTooLarge, "TR-9", "", "the response body is over %d bytes", m.cfg.MaxBody), http.StatusBadGateway)
			return
		}
		m.respond(w, r, v, rec)
	})
}

// traceVerify is verify inside a span of its own when tracing is on.
func (m *Middleware) traceVerify(r *http.Request) (*Verified, error) {
	if !m.tr.Enabled() {
		return m.verify(r)
	}
	_, sp := m.tr.Start(r.Context(), "agentctx.verify", nil)
	v, err := m.verify(r)
	if err != nil {
		sp.End(string(agentctx.CodeOf(err)))
		return nil, err
	}
	if v.ECT != nil {
		sp.Set(telemetry.JTI.String(v.ECT.Claims.ID), telemetry.Kind.String("ect"))
	}
	sp.End("ok")
	return v, nil
}

// spanAttrs are the request span's attributes and links after
// verification: the caller's task, its workflow, the action; links to the
// spans of its predecessors whose ECTs carry a traceparent (BND-10).
func (m *Middleware) spanAttrs(r *http.Request, v *Verified) []attribute.KeyValue {
	attrs := []attribute.KeyValue{telemetry.ExecAct.String(m.cfg.Action(r))}
	if v.ECT != nil {
		attrs = append(attrs, telemetry.JTI.String(v.ECT.Claims.ID), telemetry.Kind.String("ect"))
		if v.ECT.Claims.WorkflowID != "" {
			attrs = append(attrs, telemetry.WID.String(v.ECT.Claims.WorkflowID))
		}
		s := trace.SpanFromContext(r.Context())
		for _, e := range append([]*ect.Result{v.ECT}, v.Preds...) {
			if tp := traceparentOf(e.Claims.Ext); tp != "" {
				h := http.Header{"Traceparent": []string{tp}}
				if sc := telemetry.Incoming(h); sc.IsValid() {
					s.AddLink(trace.Link{SpanContext: sc})
				}
			}
		}
	}
	if v.Mandate != nil {
		attrs = append(attrs, telemetry.Kind.String("act-mandate"))
	}
	return attrs
}

// traceparentOf reads ect_ext.traceparent (BND-10), "" when absent.
func traceparentOf(ext []byte) string {
	if len(ext) == 0 {
		return ""
	}
	var e struct {
		Traceparent string `json:"traceparent"`
	}
	if json.Unmarshal(ext, &e) != nil {
		return ""
	}
	return e.Traceparent
}

func ruleOf(err error) string {
	var e *agentctx.Error
	if errors.As(err, &e) {
		return e.Rule
	}
	return ""
}

// verify applies the checks in the order WIT, proof, then the tokens.
func (m *Middleware) verify(r *http.Request) (*Verified, error) {
	cfg := &m.cfg
	ctx := r.Context()
	v := &Verified{}
	r.Header.Del("Execution-Context-Verified") // only the proxy sets it, after verification
	body, err := readBody(r, cfg.MaxBody)
	if err != nil {
		return nil, err
	}
	v.Body = body
	ecField, err := oneField(r.Header, HeaderExecutionContext, cfg.MaxFieldSize)
	if err != nil {
		return nil, err
	}
	mandateField, err := oneField(r.Header, HeaderACTMandate, cfg.MaxFieldSize)
	if err != nil {
		return nil, err
	}
	recordField, err := oneField(r.Header, HeaderACTRecord, cfg.MaxFieldSize)
	if err != nil {
		return nil, err
	}
	ects := splitValues(ecField)
	if len(ects) > cfg.MaxValues {
		return nil, agentctx.Errorf(agentctx.CodeTooLarge, "TR-1", "", "Execution-Context holds %d values, the limit is %d", len(ects), cfg.MaxValues)
	}
	pol := cfg.Policy
	if cfg.PolicyFor != nil {
		pol = cfg.PolicyFor(r)
	}
	if pol == Off {
		return v, nil
	}
	// SPEC: TR-4 the WIT first.
	witField, err := oneField(r.Header, HeaderWIT, DefaultMaxFieldSize)
	if err != nil {
		return nil, err
	}
	authz := r.Header.Values("Authorization")
	if len(authz) > 1 {
		return nil, agentctx.Errorf(agentctx.CodeMalformed, "TR-6", "", "a request has one Authorization field")
	}
	if witField == "" {
		if len(authz) == 1 && strings.HasPrefix(strings.ToLower(authz[0]), "bearer ") && looksLikeWIT(authz[0][7:]) {
			return nil, agentctx.Errorf(agentctx.CodeWITInvalid, "TR-4", "", "a WIT is never accepted as a bearer token")
		}
		if pol == Require {
			return nil, agentctx.Errorf(agentctx.CodeWITInvalid, "TR-4", "", "the request carries no Workload-Identity-Token")
		}
	} else {
		if v.WIT, err = m.wits.ValidateWIT(ctx, witField); err != nil {
			return nil, err
		}
		if err := m.proof(r, v, witField, authz, ecField, mandateField, recordField); err != nil {
			return nil, err
		}
	}
	// The tokens: the sender's ECT, then its inline predecessors.
	if len(ects) == 0 && pol == Require {
		return nil, agentctx.Errorf(agentctx.CodeMissingClaim, "TR-1", "", "the request carries no Execution-Context")
	}
	if len(ects) > 0 {
		if err := m.verifyECTs(ctx, v, ects); err != nil {
			return nil, err
		}
	}
	if mandateField != "" {
		chain := splitValues(mandateField)
		mv := m.actV
		if v.WIT != nil { // a mandate the caller signed with its workload key
			if mv, err = act.NewVerifier(act.Config{Trust: trust.Multi(v.WIT.Resolver(), cfg.Trust), Audience: cfg.ID, Clock: cfg.Clock, Replay: cfg.Replay, KeyCache: m.keys}); err != nil {
				return nil, err
			}
		}
		res, err := mv.VerifyMandate(ctx, chain[0], chain[1:])
		if err != nil {
			return nil, err
		}
		// SPEC: BND-1 the action of the request must be one of the mandate's capabilities (ACT-V3).
		action := cfg.Action(r)
		var approval *act.Approval
		if cfg.Approve != nil && res.Mandate.Oversight != nil && slices.Contains(res.Mandate.Oversight.ApprovalRequired, action) {
			if approval, err = cfg.Approve(r, res.Mandate, action); err != nil {
				// The integrator's error stays in the log: it may say more
				// than a caller should read.
				cfg.Log.Error("asking for an approval failed", "mandate_jti", res.Mandate.ID, "action", action, "err", err)
				return nil, agentctx.Errorf(agentctx.CodeInternal, "ACT-V3", "oversight", "the approval of %q could not be asked for; try again later", action)
			}
		}
		if _, err := res.Authorize(action, approval); err != nil {
			return nil, err
		}
		v.Mandate, v.chain = res, chain
	}
	if recordField != "" {
		rv := m.actV
		if v.WIT != nil {
			if rv, err = act.NewVerifier(act.Config{Trust: trust.Multi(v.WIT.Resolver(), cfg.Trust), Audience: cfg.ID, Clock: cfg.Clock, Replay: cfg.Replay, KeyCache: m.keys}); err != nil {
				return nil, err
			}
		}
		res, err := rv.VerifyRecord(ctx, recordField, nil)
		if err != nil {
			return nil, err
		}
		v.Record = res
	}
	return v, nil
}

// looksLikeWIT reports whether a bearer value is a JWS whose typ is
// wit+jwt.
func looksLikeWIT(s string) bool {
	i := strings.IndexByte(s, '.')
	if i <= 0 {
		return false
	}
	hdr, err := decodeHeader(strings.TrimSpace(s[:i]))
	return err == nil && strings.Contains(strings.ToLower(hdr), `"wit+jwt"`)
}

// proof checks the proof of possession of the WIT's key (TR-6).
func (m *Middleware) proof(r *http.Request, v *Verified, witField string, authz []string, ecField, mandateField, recordField string) error {
	cfg := &m.cfg
	aud := cfg.Audience(r)
	wptTok := ""
	if len(authz) == 1 {
		if scheme, val, ok := strings.Cut(strings.TrimSpace(authz[0]), " "); ok && strings.EqualFold(scheme, "WPT") {
			wptTok = strings.TrimSpace(val)
		}
	}
	legacy, err := oneField(r.Header, HeaderWPTLegacy, DefaultMaxFieldSize)
	if err != nil {
		return err
	}
	if legacy != "" {
		if wptTok != "" {
			return agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", "", "a request carries both WPT carriers")
		}
		if !cfg.Legacy {
			return agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", "", "the Workload-Proof-Token field (wpt-01) is not accepted; send Authorization: WPT")
		}
		wptTok = legacy
	}
	sig, err := httpsig.Find(httpsig.Message{Request: r})
	if err != nil {
		return err
	}
	switch {
	case wptTok != "" && sig != nil:
		return agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "a request carries a WPT and a WIMSE signature; send one proof")
	case wptTok != "" && cfg.Proof != ProofHTTPSig:
		fields := map[string]string{}
		for name, val := range map[string]string{"execution-context": ecField, "act-mandate": mandateField, "act-record": recordField} {
			if val != "" {
				fields[name] = val
			}
		}
		if t := r.Header.Get(HeaderTxnToken); t != "" {
			fields["txn-token"] = t
		}
		for _, name := range cfg.KnownOther {
			if val := r.Header.Get(name); val != "" {
				fields[name] = val
			}
		}
		access := ""
		if len(authz) == 1 && legacy != "" && strings.HasPrefix(strings.ToLower(authz[0]), "bearer ") {
			access = strings.TrimSpace(authz[0][7:])
		}
		if _, err := m.wits.ValidateWPT(r.Context(), wptTok, v.WIT, wimse.Request{Audience: aud, Fields: fields, AccessToken: access}); err != nil {
			if c := agentctx.CodeOf(err); c != agentctx.CodeWPTInvalid {
				return &agentctx.Error{Code: agentctx.CodeWPTInvalid, Rule: "TR-6", Message: "WPT refused: " + messageOf(err) + " (" + string(c) + ")", Err: err}
			}
			return err
		}
		v.Proof = "wpt"
	case sig != nil && cfg.Proof != ProofWPT:
		res, err := httpsig.VerifyWIMSE(httpsig.Message{Request: r}, sig, v.WIT.KeyAlg, v.WIT.Key.Public, v.Body,
			httpsig.Policy{Audience: aud, Clock: cfg.Clock, Skew: time.Minute, Nonces: cfg.Nonces, Legacy: cfg.Legacy})
		if err != nil {
			return err
		}
		v.Proof, v.SignResponse, v.nonce = "httpsig", res.SignResponse, res.Nonce
	case wptTok != "":
		return agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "this receiver accepts only WIMSE HTTP signatures as proof, not a WPT")
	case sig != nil:
		return agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", "", "this receiver accepts only WPTs (Authorization: WPT) as proof, not an HTTP signature")
	case cfg.Proof == ProofHTTPSig:
		return agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "the request proves no possession of the WIT's key: send a WIMSE HTTP signature")
	default:
		// No proof at all: 401 with WWW-Authenticate: WPT says how to authenticate.
		return agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", "", "the request proves no possession of the WIT's key: send a WPT (Authorization: WPT) or a WIMSE HTTP signature")
	}
	return nil
}

func messageOf(err error) string {
	var e *agentctx.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// verifyECTs verifies the sender's ECT (with the WIT's key when there is a
// WIT, TR-5) against the inline store of its predecessors (DAG-2).
func (m *Middleware) verifyECTs(ctx context.Context, v *Verified, ects []string) error {
	cfg := &m.cfg
	store, err := m.ectV.InlineStore(ctx, ects[1:])
	if err != nil {
		return err
	}
	res := ect.Config{Trust: cfg.Trust, Audience: cfg.ID, Clock: cfg.Clock, Replay: cfg.Replay,
		DAG: dag.NewChecker(store, dag.Config{Partial: true}), KeyCache: m.keys}
	if v.WIT != nil {
		res.Trust = v.WIT.Resolver()
	}
	ev, err := ect.NewVerifier(res)
	if err != nil {
		return err
	}
	r, err := ev.Verify(ctx, ects[0])
	if err != nil {
		return err
	}
	v.ECT = r
	v.raw = append(v.raw, ects[0])
	for _, p := range ects[1:] {
		pr, err := ect.ParseUnverified(p) // verified as evidence by InlineStore
		if err == nil {
			v.Preds = append(v.Preds, pr)
			v.raw = append(v.raw, p)
		}
	}
	return nil
}

// recordable returns the caller's verified ECTs that name the ledger
// (LedgerID): the sink takes them before the server's own ECT, so that the
// ledger holds the predecessor the server's ECT names. Inline predecessors
// come first, in the order the caller sent them.
func (m *Middleware) recordable(v *Verified) []string {
	id := m.cfg.LedgerID
	if id == "" || v.ECT == nil {
		return nil
	}
	var out []string
	for i, p := range v.Preds {
		if slices.Contains(p.Claims.Audience, id) {
			out = append(out, v.raw[i+1])
		}
	}
	if slices.Contains(v.ECT.Claims.Audience, id) {
		out = append(out, v.raw[0])
	}
	return out
}

func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body.Close()
	if err != nil {
		return nil, agentctx.Errorf(agentctx.CodeMalformed, "TR-9", "", "the request body could not be read")
	}
	if int64(len(b)) > max {
		return nil, agentctx.Errorf(agentctx.CodeTooLarge, "TR-9", "", "the request body is over %d bytes", max)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return b, nil
}

// recorder collects the handler's response.
type recorder struct {
	header   http.Header
	status   int
	wrote    bool
	body     bytes.Buffer
	max      int64
	overflow bool
	// Streaming (BND-1): a response over max, or an event stream, passes
	// through as it comes, hashed as it passes; its token then goes in the
	// trailer named trailer. Only a response that need not be signed
	// streams (a signature covers a digest of the whole body).
	w         http.ResponseWriter
	canStream bool
	trailer   string
	streaming bool
	sum       hash.Hash
	werr      error
}

func (rc *recorder) Header() http.Header { return rc.header }
func (rc *recorder) WriteHeader(s int) {
	if !rc.wrote {
		rc.status, rc.wrote = s, true
	}
}
func (rc *recorder) Write(p []byte) (int, error) {
	rc.wrote = true
	if rc.streaming {
		return rc.pass(p)
	}
	if int64(rc.body.Len()+len(p)) > rc.max {
		if !rc.canStream {
			rc.overflow = true
			return 0, errors.New("response body over the limit")
		}
		rc.startStream()
		return rc.pass(p)
	}
	return rc.body.Write(p)
}

// Flush starts streaming an event stream (the reverse proxy flushes each
// event); other responses stay buffered.
func (rc *recorder) Flush() {
	if !rc.canStream {
		return
	}
	if !rc.streaming {
		ct, _, _ := mime.ParseMediaType(rc.header.Get("Content-Type"))
		if ct != "text/event-stream" {
			return
		}
		rc.startStream()
	}
	if f, ok := rc.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (rc *recorder) pass(p []byte) (int, error) {
	rc.sum.Write(p)
	n, err := rc.w.Write(p)
	if err != nil {
		rc.werr = err
	}
	return n, err
}

// startStream sends the headers, declaring the token's trailer, and what
// was buffered.
func (rc *recorder) startStream() {
	h := rc.w.Header()
	for k, vals := range rc.header {
		h[k] = vals
	}
	h.Del("Content-Length")
	h.Del(HeaderExecutionContext)
	h.Del(HeaderACTRecord)
	h.Set("Trailer", rc.trailer)
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	rc.w.WriteHeader(rc.status)
	rc.streaming, rc.sum = true, sha256.New()
	b := rc.body.Bytes()
	rc.body = bytes.Buffer{}
	rc.pass(b)
}

// respond signs the ECT of the work done and the response when asked, then
// writes the handler's response.
func (m *Middleware) respond(w http.ResponseWriter, r *http.Request, v *Verified, rec *recorder) {
	cfg := &m.cfg
	v.mu.Lock()
	task, skip := v.task, v.skip
	v.mu.Unlock()
	if rec.streaming {
		m.respondStream(w, r, v, task, skip, rec)
		return
	}
	h := w.Header()
	for k, vals := range rec.header {
		h[k] = vals
	}
	h.Del(HeaderExecutionContext)
	body := rec.body.Bytes()
	sign := v.SignResponse || cfg.SignResponses
	if sign && cfg.WIT == "" {
		// SPEC: TR-6 a server that must sign but cannot answers 501, never an unsigned success.
		for k := range h {
			delete(h, k)
		}
		WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "the server cannot sign responses: it has no WIT"), http.StatusNotImplemented)
		return
	}
	if !skip && v.Mandate != nil {
		// SPEC: TR-9, BND-1 with an ACT mandate the server signs the ACT record of the work instead.
		tok, err := m.responseRecord(r, v, task, rec.status, agentctx.HashBytes(body))
		if err != nil {
			cfg.Log.Error("signing the ACT record failed", "err", err)
			WriteProblemStatus(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "TR-9", Message: "the ACT record could not be signed"}, http.StatusInternalServerError)
			return
		}
		h.Set(HeaderACTRecord, tok)
		if cfg.Sink != nil {
			// The mandate chain first, root first, so the ledger holds the mandate the record completes.
			toks := m.recordable(v)
			for i := len(v.chain) - 1; i >= 0; i-- {
				toks = append(toks, v.chain[i])
			}
			if err := cfg.Sink.Append(r.Context(), append(toks, tok)); err != nil {
				cfg.Log.Warn("the sink refused a token", "token_sha256", tokenHash(tok), "err", err)
			}
		}
	} else if !skip {
		tok, err := m.responseECT(r, v, task, agentctx.HashBytes(body))
		if err != nil {
			cfg.Log.Error("signing the response ECT failed", "err", err)
			WriteProblemStatus(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "TR-9", Message: "the response ECT could not be signed"}, http.StatusInternalServerError)
			return
		}
		h.Set(HeaderExecutionContext, tok)
		if cfg.Sink != nil {
			if err := cfg.Sink.Append(r.Context(), append(m.recordable(v), tok)); err != nil {
				cfg.Log.Warn("the sink refused a token", "token_sha256", tokenHash(tok), "err", err)
			}
		}
	}
	if sign {
		h.Set(HeaderWIT, cfg.WIT)
		if len(body) > 0 {
			httpsig.SetContentDigest(h, body)
		}
		alg, err := httpsig.AlgFor(cfg.Key.Alg())
		if err == nil {
			resp := &http.Response{StatusCode: rec.status, Header: h}
			err = httpsig.SignResponse(resp, r, v.nonce, alg, cfg.Key.Signer(), cfg.Clock())
		}
		if err != nil {
			for k := range h {
				delete(h, k)
			}
			WriteProblemStatus(w, agentctx.Errorf(agentctx.CodeHTTPSigInvalid, "TR-6", "", "the response could not be signed"), http.StatusNotImplemented)
			return
		}
	}
	h.Del("Content-Length")
	w.WriteHeader(rec.status)
	w.Write(body)
}

// respondStream ends a streamed response (BND-1): the ECT (or ACT record)
// of the work, over the hash of every byte that passed, goes in the
// trailer declared when the stream started, and to the sink. A stream
// the client did not take whole gets no token: the work was not delivered.
func (m *Middleware) respondStream(w http.ResponseWriter, r *http.Request, v *Verified, task *Task, skip bool, rec *recorder) {
	cfg := &m.cfg
	if skip || rec.werr != nil {
		return
	}
	out := base64.RawURLEncoding.EncodeToString(rec.sum.Sum(nil))
	var tok string
	var err error
	toks := m.recordable(v)
	if v.Mandate != nil {
		tok, err = m.responseRecord(r, v, task, rec.status, out)
		for i := len(v.chain) - 1; i >= 0; i-- {
			toks = append(toks, v.chain[i])
		}
	} else {
		tok, err = m.responseECT(r, v, task, out)
	}
	if err != nil {
		cfg.Log.Error("signing the token of a streamed response failed", "err", err)
		return
	}
	w.Header().Set(rec.trailer, tok)
	if cfg.Sink != nil {
		if err := cfg.Sink.Append(r.Context(), append(toks, tok)); err != nil {
			cfg.Log.Warn("the sink refused a token", "token_sha256", tokenHash(tok), "err", err)
		}
	}
}

// responseRecord signs the ACT record of the handler's work under the
// caller's mandate (TR-9): the mandate's claims, exec_act the action (or
// the task's), pred the caller's ECT, the hashes of the exact bodies,
// status completed, or failed with the task's code or the HTTP status.
func (m *Middleware) responseRecord(r *http.Request, v *Verified, task *Task, status int, outHash string) (string, error) {
	cfg := &m.cfg
	in := act.RecordInput{ExecAct: cfg.Action(r), Status: act.StatusCompleted, InputHash: agentctx.HashBytes(v.Body), OutputHash: outHash, ExecTS: cfg.Clock()}
	if v.ECT != nil {
		in.Pred = []string{v.ECT.Claims.ID}
	}
	if task != nil {
		if task.ExecAct != "" {
			in.ExecAct = task.ExecAct
		}
		if task.Pred != nil {
			in.Pred = task.Pred
		}
		if task.OutputHash != "" {
			in.OutputHash = task.OutputHash
		}
		if task.Failed != "" {
			in.Status, in.Err = act.StatusFailed, &act.ExecError{Code: task.Failed, Message: "the task failed"}
		}
	}
	if status/100 != 2 && in.Status == act.StatusCompleted {
		in.Status, in.Err = act.StatusFailed, &act.ExecError{Code: strconv.Itoa(status), Message: http.StatusText(status)}
	}
	return act.NewRecord(cfg.Key, cfg.ID, v.Mandate, in, cfg.Clock())
}

// responseECT signs the ECT of the handler's work (TR-9): iss the server,
// exec_act the configured action (or the task's), aud the caller, pred the
// caller's ECT, wid carried over, the hashes of the exact request and
// response bodies.
func (m *Middleware) responseECT(r *http.Request, v *Verified, task *Task, outHash string) (string, error) {
	cfg := &m.cfg
	c := &ect.Claims{Issuer: cfg.ID, ExecAct: cfg.Action(r), Pred: []string{}}
	switch {
	case v.ECT != nil:
		c.Audience = []string{v.ECT.Claims.Issuer}
		c.Pred = []string{v.ECT.Claims.ID}
		c.WorkflowID = v.ECT.Claims.WorkflowID
	case v.WIT != nil:
		c.Audience = []string{v.WIT.Subject}
	default:
		c.Audience = []string{cfg.ID}
	}
	if task != nil {
		if task.ExecAct != "" {
			c.ExecAct = task.ExecAct
		}
		if task.Pred != nil {
			c.Pred = task.Pred
		}
		c.Ext = task.Ext
	}
	if cfg.TraceClaim && m.tr.Enabled() {
		// SPEC: BND-10 the request span's traceparent in ect_ext.
		if tp := telemetry.Traceparent(r.Context()); tp != "" {
			c.Ext = withTraceparent(c.Ext, tp)
		}
	}
	if cfg.LedgerID != "" && !slices.Contains(c.Audience, cfg.LedgerID) {
		c.Audience = append(c.Audience, cfg.LedgerID)
	}
	c.InputHash = agentctx.HashBytes(v.Body)
	c.OutputHash = outHash
	if task != nil && task.OutputHash != "" {
		c.OutputHash = task.OutputHash
	}
	return ect.Create(cfg.Key, c, cfg.Clock())
}

// withTraceparent returns the ect_ext object ext with traceparent set.
func withTraceparent(ext []byte, tp string) []byte {
	m := map[string]json.RawMessage{}
	if len(ext) > 0 && json.Unmarshal(ext, &m) != nil {
		return ext // not an object: left as the handler gave it
	}
	m["traceparent"], _ = json.Marshal(tp)
	b, _ := json.Marshal(m)
	return b
}
