// Package agentctx holds the vocabulary shared by every part of the project: the
// stable error codes of the ACT and ECT profile and the typed error that carries
// them.
//
// The work is done by the sub-packages: [github.com/agentctx/agentctx/ect] creates
// and verifies Execution Context Tokens, [github.com/agentctx/agentctx/trust]
// resolves verification keys, and the agentctx command drives both.
//
// Every verification failure is an [*Error] whose Code is one of the constants
// below. Codes are part of the public API: the CLI prints them, HTTP problem
// details carry them, and callers match them with [CodeOf] or errors.Is against
// the sentinel returned by [Code.Err], never by comparing message strings.
package agentctx

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable failure code from the profile
// (for example "expired" or "bad_signature").
type Code string

// The error codes of the profile. Their string values are wire values.
const (
	CodeTooLarge         Code = "too_large"
	CodeMalformed        Code = "malformed"
	CodeLevelTooLow      Code = "level_too_low"
	CodeInvalidTyp       Code = "invalid_typ"
	CodeAlgNotAllowed    Code = "alg_not_allowed"
	CodeUnsupportedCrit  Code = "unsupported_crit"
	CodeUnknownKey       Code = "unknown_key"
	CodeBadSignature     Code = "bad_signature"
	CodeMissingClaim     Code = "missing_claim"
	CodeInvalidClaim     Code = "invalid_claim"
	CodeExpired          Code = "expired"
	CodeNotYetValid      Code = "not_yet_valid"
	CodeIATInFuture      Code = "iat_in_future"
	CodeTooOld           Code = "too_old"
	CodeAudienceMismatch Code = "audience_mismatch"
	CodeReplay           Code = "replay"
	CodeReplayCacheFull  Code = "replay_cache_full"

	CodeDAGDuplicate        Code = "dag_duplicate"
	CodeDAGUnknownPred      Code = "dag_unknown_pred"
	CodeDAGTimeOrder        Code = "dag_time_order"
	CodeDAGCycle            Code = "dag_cycle"
	CodeDAGTooDeep          Code = "dag_too_deep"
	CodeDAGWorkflowMismatch Code = "dag_workflow_mismatch"
	CodeDAGPolicyViolation  Code = "dag_policy_violation"

	CodePhaseError          Code = "phase_error"
	CodeCapabilityViolation Code = "capability_violation"
	CodePrivilegeEscalation Code = "privilege_escalation"
	CodeDelegationDepth     Code = "delegation_depth"
	CodeDelegationBroken    Code = "delegation_broken"
	CodeMandateMismatch     Code = "mandate_mismatch"
	CodeMandateUnknown      Code = "mandate_unknown"
	CodeApprovalRequired    Code = "approval_required"
	CodeIdentityMismatch    Code = "identity_mismatch"

	// Transport (spec/transport.md).
	CodeWITInvalid     Code = "wit_invalid"
	CodeWPTInvalid     Code = "wpt_invalid"
	CodeHTTPSigInvalid Code = "httpsig_invalid"

	// CodeInternal reports a failure of the verifier itself (a store that
	// could not be read, for example), not a verdict on the token.
	CodeInternal Code = "internal_error"
)

// Codes returns every code of the profile: the closed vocabulary of
// verdicts (test vectors use it with "valid").
func Codes() []Code {
	return []Code{
		CodeTooLarge, CodeMalformed, CodeLevelTooLow, CodeInvalidTyp, CodeAlgNotAllowed, CodeUnsupportedCrit,
		CodeUnknownKey, CodeBadSignature, CodeMissingClaim, CodeInvalidClaim, CodeExpired, CodeNotYetValid,
		CodeIATInFuture, CodeTooOld, CodeAudienceMismatch, CodeReplay, CodeReplayCacheFull,
		CodeDAGDuplicate, CodeDAGUnknownPred, CodeDAGTimeOrder, CodeDAGCycle, CodeDAGTooDeep,
		CodeDAGWorkflowMismatch, CodeDAGPolicyViolation,
		CodePhaseError, CodeCapabilityViolation, CodePrivilegeEscalation, CodeDelegationDepth,
		CodeDelegationBroken, CodeMandateMismatch, CodeMandateUnknown, CodeApprovalRequired, CodeIdentityMismatch,
		CodeWITInvalid, CodeWPTInvalid, CodeHTTPSigInvalid,
	}
}

// Err returns the sentinel for c: errors.Is(err, c.Err()) reports whether err
// carries code c.
func (c Code) Err() error { return codeSentinel{c} }

type codeSentinel struct{ c Code }

// Error returns the code.
func (s codeSentinel) Error() string { return string(s.c) }

// Error is a verification failure: what was wrong, under which rule of the
// profile, and with which claim.
type Error struct {
	Code    Code   // stable code, e.g. CodeExpired
	Rule    string // rule ID of the profile, e.g. "ECT-V8"
	Claim   string // offending claim or header parameter, if any, e.g. "exp"
	Message string // human-readable detail, never containing key or token material
	Err     error  // underlying cause, if any
}

// Error formats the failure as "message (claim)".
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = string(e.Code)
	}
	if e.Claim != "" {
		return fmt.Sprintf("%s (%s)", msg, e.Claim)
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := target.(codeSentinel)
	return ok && s.c == e.Code
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, rule, claim, format string, args ...any) *Error {
	return &Error{Code: code, Rule: rule, Claim: claim, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code carried by err, or CodeInternal when err carries none.
// It returns "" for a nil error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
