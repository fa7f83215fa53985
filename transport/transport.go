// Package transport carries ECTs and ACTs over HTTP beside the WIMSE
// identity (spec/transport.md): the server middleware of TR-9, which
// verifies the caller's WIT, proof (WPT or HTTP message signature) and
// tokens, hands the handler the verified context and signs the ECT of the
// work done into the response; and the client RoundTripper of TR-10, which
// attaches the caller's ECT, WIT and a fresh proof and verifies what comes
// back.
//
// Header fields (TR-1, TR-2): Execution-Context holds the sender's ECT
// followed by predecessor ECTs, comma-separated, on one field line;
// ACT-Mandate the mandate and its delegation parents, leaf first; ACT-Record
// one record. Failures answer with RFC 9457 problem details
// (application/problem+json) carrying code, rule and claim, and the status
// of TR-3: 400 for a broken field, WIT or signature, 401 (WWW-Authenticate:
// WPT) for a WPT failure, 403 for a token that verifies but is refused, 431
// for an over-size field.
package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
)

// Header field names.
const (
	HeaderExecutionContext = "Execution-Context"
	HeaderACTMandate       = "ACT-Mandate"
	HeaderACTRecord        = "ACT-Record"
	HeaderWIT              = "Workload-Identity-Token"
	HeaderWPTLegacy        = "Workload-Proof-Token"
	HeaderTxnToken         = "Txn-Token"
)

// Defaults of TR-1.
const (
	DefaultMaxValues    = 16
	DefaultMaxFieldSize = 16 << 10
	DefaultMaxBody      = 32 << 20
	DefaultStreamAbove  = 1 << 20
)

// Policy says how a server treats the WIMSE identity and tokens of a
// request.
type Policy int

// The policies. The zero Policy is Require: a zero value never skips a
// check.
const (
	Require         Policy = iota // every request carries a WIT, a proof and an ECT, all verified
	VerifyIfPresent               // what is present is verified; nothing is required
	Off                           // nothing is verified (the response ECT is still signed)
)

// ParsePolicy reads "require", "verify-if-present" or "off".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "require", "":
		return Require, nil
	case "verify-if-present":
		return VerifyIfPresent, nil
	case "off":
		return Off, nil
	}
	return 0, errors.New(`policy must be "require", "verify-if-present" or "off"`)
}

// Proof selects the proof of possession a server accepts or a client sends.
type Proof int

// The proofs. The zero value accepts either (server) or sends a WPT
// (client).
const (
	ProofAny Proof = iota
	ProofWPT
	ProofHTTPSig
)

// ParseProof reads "wpt", "httpsig" or "any".
func ParseProof(s string) (Proof, error) {
	switch s {
	case "any", "":
		return ProofAny, nil
	case "wpt":
		return ProofWPT, nil
	case "httpsig":
		return ProofHTTPSig, nil
	}
	return 0, errors.New(`proof must be "wpt", "httpsig" or "any"`)
}

// Sink receives every token the middleware signs (a ledger, a spool). It
// must not block the response for long: the proxy's spool queues.
type Sink interface {
	Append(ctx context.Context, tokens []string) error
}

// Problem is an RFC 9457 problem detail with this profile's members.
type Problem struct {
	Type   string        `json:"type"`
	Title  string        `json:"title"`
	Status int           `json:"status"`
	Detail string        `json:"detail,omitempty"`
	Code   agentctx.Code `json:"code"`
	Rule   string        `json:"rule,omitempty"`
	Claim  string        `json:"claim,omitempty"`
}

// StatusOf maps a verification failure to its TR-3 status.
func StatusOf(err error) int {
	switch agentctx.CodeOf(err) {
	case agentctx.CodeTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	case agentctx.CodeWPTInvalid:
		return http.StatusUnauthorized
	case agentctx.CodeMalformed, agentctx.CodeInvalidTyp, agentctx.CodeAlgNotAllowed, agentctx.CodeUnsupportedCrit,
		agentctx.CodeUnknownKey, agentctx.CodeBadSignature, agentctx.CodeMissingClaim, agentctx.CodeInvalidClaim,
		agentctx.CodeWITInvalid, agentctx.CodeHTTPSigInvalid, agentctx.CodeLevelTooLow, agentctx.CodePhaseError,
		agentctx.CodeDelegationBroken:
		return http.StatusBadRequest
	case agentctx.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusForbidden
}

// ProblemOf builds the problem detail of err with status.
func ProblemOf(err error, status int) Problem {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: agentctx.CodeOf(err)}
	var e *agentctx.Error
	if errors.As(err, &e) {
		p.Detail, p.Rule, p.Claim = e.Message, e.Rule, e.Claim
		p.Type = "https://agentctx.dev/problems/" + string(e.Code)
	} else if err != nil {
		p.Detail = "internal error"
	}
	return p
}

// WriteProblem answers w with err as a problem detail and its TR-3 status
// (401 with WWW-Authenticate: WPT for a WPT failure).
func WriteProblem(w http.ResponseWriter, err error) {
	WriteProblemStatus(w, err, StatusOf(err))
}

// WriteProblemStatus answers w with err as a problem detail and status.
func WriteProblemStatus(w http.ResponseWriter, err error, status int) {
	p := ProblemOf(err, status)
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", "WPT")
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// decodeHeader decodes a JWS header segment (unverified).
func decodeHeader(seg string) (string, error) {
	b, err := jws.DecodeSegment(seg)
	return string(b), err
}

// tokenHash names a token in logs: the hex SHA-256 of its bytes (never the
// token itself).
func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:8])
}

// splitValues splits a comma-separated field value (TR-1: a JWS compact
// value holds no comma; white space around commas is ignored).
func splitValues(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// oneField returns the single field line of name, refusing several lines
// (TR-1) and an over-size value.
func oneField(h http.Header, name string, maxSize int) (string, error) {
	vals := h.Values(name)
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", agentctx.Errorf(agentctx.CodeMalformed, "TR-1", "", "%s is sent as %d field lines; send one", name, len(vals))
	case len(vals[0]) > maxSize:
		return "", agentctx.Errorf(agentctx.CodeTooLarge, "TR-1", "", "%s is %d bytes, the limit is %d", name, len(vals[0]), maxSize)
	}
	return strings.TrimSpace(vals[0]), nil
}
