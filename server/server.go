// Package server is the audit service of spec/service.md (agentctx serve):
// the ledger's JSON API under /v1 (appends group-committed, entries,
// tasks, workflows, checkpoint, proofs, key), the C2SP tlog-tiles read
// endpoints at the root, health and metrics. It adds HTTP to a
// *ledger.Ledger, not rules: every decision stays in the ledger, so the
// CLI and the service always agree.
package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentctx/agentctx/internal/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/witness"
)

// Defaults of SVC-4 and SVC-10.
const (
	DefaultBatchWindow = 5 * time.Millisecond
	DefaultBatchMax    = 512
	DefaultMaxBody     = 1 << 20
	DefaultMaxTokens   = 1000
	DefaultMaxToken    = 8192
	DefaultMaxInFlight = 4096
	DefaultPageLimit   = 100
	// DefaultPageMaxNodes is the largest workflow the page draws without
	// asking first (SVC-11: a warning, not a freeze, beyond it).
	DefaultPageMaxNodes = 2000
	MaxPageLimit        = 1000
)

// Config holds what the service needs. Ledger is required (opened with its
// signing key and trust, for appends).
type Config struct {
	Ledger *ledger.Ledger
	// ReadTokens are the bearer tokens that may read entries, tasks and
	// workflows; nil leaves those reads open (only on loopback: the CLI
	// enforces SVC-8).
	ReadTokens []string
	// ClientCerts lets a request with a verified TLS client certificate
	// read (the listener verifies it against the configured CAs); with it
	// or with ReadTokens, reads need a credential.
	ClientCerts bool
	// Tunables; zero means the default.
	BatchWindow time.Duration
	BatchMax    int
	MaxBody     int64
	MaxTokens   int
	MaxToken    int
	MaxInFlight int
	// TracerProvider records a span per append request (BND-9); nil: off.
	TracerProvider trace.TracerProvider
	// Witnesses are asked to cosign each new checkpoint (C2SP
	// tlog-witness), in the background; their cosignatures are stored
	// with the checkpoint and published with it.
	Witnesses []*witness.Peer
	// PageMaxNodes is the largest workflow the web page draws at once;
	// beyond it the page warns and draws only when asked.
	PageMaxNodes int
	Log          *slog.Logger
}

// Server is the audit service's handler. It is safe for concurrent use.
type Server struct {
	cfg      Config
	l        *ledger.Ledger
	b        *batcher
	mu       sync.RWMutex
	closed   bool
	inflight atomic.Int64
	tokens   [][32]byte // SHA-256 of the read tokens
	metrics  *metrics
	mux      *http.ServeMux
	index    []byte // the page's index.html with its settings
	wit      *witnessing
	tr       *telemetry.Tracer
}

// New returns the service over cfg.Ledger.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil {
		return nil, errors.New("server: Ledger is required")
	}
	if cfg.BatchWindow < 0 || cfg.BatchMax < 0 || cfg.MaxBody < 0 || cfg.MaxTokens < 0 || cfg.MaxToken < 0 || cfg.MaxInFlight < 0 || cfg.PageMaxNodes < 0 {
		return nil, errors.New("server: a batch setting or cap is negative; give a positive value or zero for the default")
	}
	if cfg.MaxToken > 65000 {
		return nil, errors.New("server: MaxToken over 65000 bytes: an entry bundle holds entries of at most 65535 bytes (SVC-6)")
	}
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = DefaultBatchWindow
	}
	if cfg.BatchMax == 0 {
		cfg.BatchMax = DefaultBatchMax
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.MaxToken == 0 {
		cfg.MaxToken = DefaultMaxToken
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.PageMaxNodes == 0 {
		cfg.PageMaxNodes = DefaultPageMaxNodes
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	index, err := pageIndex(cfg.PageMaxNodes)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, l: cfg.Ledger, metrics: newMetrics(), index: index, tr: telemetry.New(cfg.TracerProvider)}
	s.b = newBatcher(cfg.Ledger, cfg.BatchWindow, cfg.BatchMax, s.metrics.batch)
	s.metrics.inflight = s.inflight.Load
	s.metrics.size = cfg.Ledger.Size
	for _, t := range cfg.ReadTokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/entries", s.postEntries)
	m.HandleFunc("GET /v1/entries/{index}", s.read(s.getEntry))
	m.HandleFunc("GET /v1/entries/{index}/receipt", s.read(s.getReceipt))
	m.HandleFunc("GET /v1/tasks/{jti}", s.read(s.getTask))
	m.HandleFunc("GET /v1/workflows", s.read(s.listWorkflows))
	m.HandleFunc("GET /v1/workflows/{wid}", s.read(s.getWorkflow))
	m.HandleFunc("GET /v1/checkpoint", s.getCheckpoint)
	m.HandleFunc("GET /checkpoint", s.getCheckpoint)
	m.HandleFunc("GET /v1/proofs/inclusion", s.getInclusion)
	m.HandleFunc("GET /v1/proofs/consistency", s.getConsistency)
	m.HandleFunc("GET /v1/key", s.getKey)
	m.HandleFunc("GET /tile/", s.getTile)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /readyz", s.ready)
	m.HandleFunc("GET /metrics", s.metrics.serve)
	// SVC-11: the page; its data comes from the routes above, under their
	// access rules.
	for _, p := range []string{"GET /{$}", "GET /workflows/{wid}", "GET /entries/{index}", "GET /ledger"} {
		m.HandleFunc(p, s.servePage)
	}
	m.HandleFunc("GET /static/{file}", serveStatic)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, method := range []string{"GET", "POST"} {
			if method == r.Method {
				continue
			}
			c := r.Clone(r.Context())
			c.Method = method
			if _, pat := m.Handler(c); pat != "/" && pat != "" {
				allow = append(allow, method)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			problem(w, agentctx.Errorf(agentctx.CodeMalformed, "SVC-9", "", "%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")), http.StatusMethodNotAllowed)
			return
		}
		problem(w, agentctx.Errorf(agentctx.CodeMalformed, "SVC-9", "", "no route %s %s", r.Method, r.URL.Path), http.StatusNotFound)
	})
	s.mux = m
	for i, p := range cfg.Witnesses {
		if p == nil || p.Verifier == nil || p.URL == "" {
			return nil, fmt.Errorf("server: witness %d needs a name, a URL and a cosignature key", i+1)
		}
	}
	if len(cfg.Witnesses) > 0 {
		s.wit = newWitnessing(s, cfg.Witnesses)
	}
	return s, nil
}

// ServeHTTP implements http.Handler, with one log line per request: route,
// status, duration and, for appends, the jti of each token appended and the
// SHA-256 of each token sent; never a token, key or credential.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: 200}
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		problem(sw, badRequest("the query string does not parse: %v", err), http.StatusBadRequest)
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	route := r.Pattern
	if route == "" {
		route = "unknown"
	}
	s.metrics.request(route, sw.status)
	attrs := []any{"method", r.Method, "route", route, "status", sw.status, "duration_ms", time.Since(start).Milliseconds()}
	if sw.hashes != nil {
		attrs = append(attrs, "jti", sw.jtis, "token_sha256", sw.hashes)
	}
	s.cfg.Log.Info("request", attrs...)
}

// statusWriter records the status and, for appends, what the log line
// names: jtis and token hashes.
type statusWriter struct {
	http.ResponseWriter
	status int
	jtis   []string
	hashes []string
}

// logTokens records the tokens of an append for the request's log line.
func logTokens(w http.ResponseWriter, inputs []ledger.Input, results []result) {
	sw, ok := w.(*statusWriter)
	if !ok {
		return
	}
	sw.hashes = make([]string, len(inputs))
	sw.jtis = []string{}
	for i, in := range inputs {
		sw.hashes[i] = hashOf(in.Token)
		if i < len(results) && results[i].OK && results[i].Receipt != nil {
			sw.jtis = append(sw.jtis, results[i].Receipt.JTI)
		}
	}
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

// Close stops accepting appends and waits for the queued batches to commit
// (SVC-3); the caller then closes the store.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.b.close()
		if s.wit != nil {
			s.wit.close()
		}
	}
	s.mu.Unlock()
}

func problem(w http.ResponseWriter, err error, status int) {
	transport.WriteProblemStatus(w, err, status)
}

func badRequest(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeMalformed, "SVC-9", "", format, args...)
}

// read guards the reads that may reveal what agents did (SVC-8): with read
// tokens configured, a bearer token compared in constant time is needed.
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && s.cfg.ClientCerts {
			h(w, r)
			return
		}
		if len(s.tokens) > 0 || s.cfg.ClientCerts {
			got := ""
			if v := r.Header.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
				got = strings.TrimSpace(v[7:])
			}
			h1 := sha256.Sum256([]byte(got))
			ok := 0
			for _, t := range s.tokens {
				ok |= subtle.ConstantTimeCompare(h1[:], t[:]) // SPEC: SVC-8 constant time
			}
			if ok != 1 || got == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="agentctx"`)
				problem(w, agentctx.Errorf(agentctx.CodeUnknownKey, "SVC-8", "", "a read credential is needed (Authorization: Bearer)"), http.StatusUnauthorized)
				return
			}
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Message: "encoding the answer failed"}, 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// result is one token's answer in an append.
type result struct {
	OK         bool              `json:"ok"`
	Index      *uint64           `json:"index,omitempty"`
	Receipt    *ledger.Receipt   `json:"receipt,omitempty"`
	Supporting []*ledger.Receipt `json:"supporting,omitempty"`
	Partial    bool              `json:"partial,omitempty"`
	Missing    []string          `json:"missing,omitempty"`
	Code       agentctx.Code     `json:"code,omitempty"`
	Rule       string            `json:"rule,omitempty"`
	Message    string            `json:"message,omitempty"`
}

func resultOf(o ledger.Outcome) result {
	if o.Err != nil {
		r := result{Code: agentctx.CodeOf(o.Err)}
		var e *agentctx.Error
		if errors.As(o.Err, &e) {
			r.Rule, r.Message = e.Rule, e.Message
		}
		return r
	}
	idx := o.Receipt.Index
	return result{OK: true, Index: &idx, Receipt: o.Receipt, Supporting: o.Supporting, Partial: len(o.Partial) > 0, Missing: o.Partial}
}

// statusOfRefusal is the SVC-9 status of a refused token.
func statusOfRefusal(code agentctx.Code) int {
	switch code {
	case agentctx.CodeDAGDuplicate:
		return http.StatusConflict
	case agentctx.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}

func (s *Server) postEntries(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		w.Header().Set("Retry-After", "1")
		problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "SVC-3", Message: "the service is stopping"}, http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		problem(w, badRequest("the body could not be read"), http.StatusBadRequest)
		return
	}
	if int64(len(body)) > s.cfg.MaxBody {
		problem(w, agentctx.Errorf(agentctx.CodeTooLarge, "SVC-10", "", "the body is over %d bytes", s.cfg.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var lines []string
	single := false
	format := formatJSON
	switch ct {
	case "application/jwt", "text/plain":
		single = true
		// SPEC: SVC-6a the receipt of a one-token append in the encoding asked for.
		var ok bool
		if format, ok = negotiate(w, r); !ok {
			return
		}
		lines = []string{strings.TrimSpace(string(body))}
	case "application/json":
		var req struct {
			Tokens []string `json:"tokens"`
		}
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			problem(w, badRequest(`the body is not {"tokens": [...]}`), http.StatusBadRequest)
			return
		}
		lines = req.Tokens
	default:
		problem(w, badRequest("send application/jwt (one token) or application/json {\"tokens\": [...]}"), http.StatusUnsupportedMediaType)
		return
	}
	if len(lines) == 0 || len(lines) == 1 && lines[0] == "" {
		problem(w, badRequest("no token to append"), http.StatusBadRequest)
		return
	}
	if len(lines) > s.cfg.MaxTokens {
		problem(w, agentctx.Errorf(agentctx.CodeTooLarge, "SVC-10", "", "%d tokens, the limit is %d per request", len(lines), s.cfg.MaxTokens), http.StatusRequestEntityTooLarge)
		return
	}
	// SPEC: SVC-10 in-flight cap: 503 with Retry-After beyond it.
	if n := s.inflight.Add(int64(len(lines))); n > int64(s.cfg.MaxInFlight) {
		s.inflight.Add(-int64(len(lines)))
		w.Header().Set("Retry-After", "1")
		problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "SVC-10", Message: "too many appends in flight; retry"}, http.StatusServiceUnavailable)
		return
	}
	defer s.inflight.Add(-int64(len(lines)))
	inputs := make([]ledger.Input, len(lines))
	tooLong := make([]bool, len(lines))
	var queued []ledger.Input
	for i, l := range lines {
		parts := strings.Split(l, ",")
		for j := range parts {
			parts[j] = strings.TrimSpace(parts[j])
		}
		inputs[i] = ledger.Input{Token: parts[0], Supporting: parts[1:]}
		if len(parts[0]) > s.cfg.MaxToken {
			tooLong[i] = true
			continue
		}
		queued = append(queued, inputs[i])
	}
	// The signature checks run here, in parallel across requests, not one
	// batch at a time under the sequencer (which checks again, cheaply).
	for _, in := range queued {
		s.l.Precheck(r.Context(), in)
	}
	var outs []ledger.Outcome
	if len(queued) > 0 {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			w.Header().Set("Retry-After", "1")
			problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "SVC-3", Message: "the service is stopping"}, http.StatusServiceUnavailable)
			return
		}
		start := time.Now()
		outs, err = s.b.append(r.Context(), queued)
		s.mu.RUnlock()
		s.metrics.commit(time.Since(start))
		if err != nil {
			s.cfg.Log.Error("append failed", "err", err)
			problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "LED-10", Message: "the append failed; nothing was acknowledged"}, http.StatusInternalServerError)
			return
		}
		if s.wit != nil {
			s.wit.notify() // a new checkpoint, perhaps: the witnesses cosign it
		}
	}
	results := make([]result, len(lines))
	for i := range lines {
		if tooLong[i] {
			results[i] = result{Code: agentctx.CodeTooLarge, Rule: "ECT-V1", Message: fmt.Sprintf("the token is over %d bytes", s.cfg.MaxToken)}
		} else {
			results[i], outs = resultOf(outs[0]), outs[1:]
		}
		var kind string
		if results[i].OK {
			kind = results[i].Receipt.Kind
		} else {
			kind = ledger.KindOf(inputs[i].Token)
		}
		s.metrics.appended(kind, results[i])
		if !results[i].OK {
			s.cfg.Log.Info("token refused", "token_sha256", hashOf(inputs[i].Token), "code", results[i].Code)
		}
	}
	logTokens(w, inputs, results)
	if s.tr.Enabled() {
		s.traceAppend(r, inputs, results)
	}
	if single {
		res := results[0]
		if !res.OK {
			problem(w, &agentctx.Error{Code: res.Code, Rule: res.Rule, Message: res.Message}, statusOfRefusal(res.Code))
			return
		}
		s.writeReceipt(w, r, res.Receipt, format)
		return
	}
	writeJSON(w, map[string]any{"results": results})
}

func hashOf(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if _, err := s.l.Size(r.Context()); err != nil {
		problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "SVC-7", Message: "the store is not reachable"}, http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// uintParam reads a non-negative integer query parameter.
func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, badRequest("%s must be a non-negative integer", name)
	}
	return n, nil
}

// traceAppend records the span of an append request (BND-9): the number of
// tokens, and for one token its jti, kind and result code.
func (s *Server) traceAppend(r *http.Request, inputs []ledger.Input, results []result) {
	_, sp := s.tr.Start(r.Context(), "agentctx.append", nil, attribute.Int("agentctx.tokens", len(inputs)))
	res := "ok"
	for i, x := range results {
		if !x.OK {
			res = string(x.Code)
		}
		if len(results) == 1 {
			sp.Set(telemetry.JTI.String(ledger.JTIOf(inputs[i].Token)), telemetry.Kind.String(ledger.KindOf(inputs[i].Token)))
		}
	}
	sp.End(res)
}
