// Package ect creates and verifies Execution Context Tokens
// (draft-nennemann-wimse-ect-02, profile in spec/ect.md).
//
// An ECT is one agent's signed statement "I executed task jti, of kind
// exec_act, after tasks pred, on input inp_hash, producing out_hash". It is
// evidence, not authorization: a valid ECT grants nothing.
//
// Wire format (level L2): a compact JWS with the header
//
//	{"alg":"ES256"|"EdDSA","kid":"<key id>","typ":"exec+jwt"}
//
// and a JSON payload such as
//
//	{"iss":"spiffe://example.com/agent/a","aud":["spiffe://example.com/agent/b"],
//	 "iat":1767225600,"exp":1767226200,"jti":"0b7c5e4e-5f7a-4c1e-9d55-8b8c0f4a2e11",
//	 "wid":"8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77","exec_act":"review_spec","pred":[],
//	 "inp_hash":"n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg"}
//
// Level L1 is the same payload, base64url-encoded, without a signature; it is
// accepted only by a verifier whose minimum level is L1.
//
// Create a token with [Create]; verify one with a [Verifier] built by
// [NewVerifier]. Every failure is an *agentctx.Error carrying the stable code,
// the rule ID (ECT-V1..ECT-V13) and the offending claim.
package ect

import (
	"encoding/json"
	"time"
)

// Media types of the typ header.
const (
	Typ       = "exec+jwt"
	LegacyTyp = "wimse-exec+jwt" // draft -00, accepted unless legacy names are off
)

// Defaults of the profile. Each has a Config field that overrides it.
const (
	DefaultLifetime  = 600 * time.Second // ECT-C4
	DefaultSkew      = 60 * time.Second  // exp, nbf and iat checks
	DefaultMaxAge    = 900 * time.Second // ECT-V9
	DefaultMaxPred   = 100               // ECT-C8, DAG-7
	DefaultMaxLength = 8192              // ECT-V1, bytes
	MaxExtSize       = 4096              // ECT-C11, bytes of the serialized ect_ext
	MaxExtDepth      = 5                 // ECT-C11, the object itself is depth 1
)

// Level is an assurance level (spec/ect.md "Assurance levels").
type Level int

// The assurance levels.
const (
	L1 Level = 1 // unsigned, structure only
	L2 Level = 2 // signed JWS
	L3 Level = 3 // signed and held in an audit ledger with a receipt
)

// Claims are the claims of an ECT. Times are whole seconds (NumericDate).
type Claims struct {
	Issuer     string    // iss (ECT-C1)
	Audience   []string  // aud (ECT-C2), emitted as an array
	IssuedAt   time.Time // iat (ECT-C3)
	Expiry     time.Time // exp (ECT-C4)
	NotBefore  time.Time // nbf (ECT-C12), zero when absent
	ID         string    // jti (ECT-C5), the task id
	WorkflowID string    // wid (ECT-C6), "" when absent
	ExecAct    string    // exec_act (ECT-C7)
	Pred       []string  // pred (ECT-C8), empty for a root task
	InputHash  string    // inp_hash (ECT-C9), see agentctx.HashBytes
	OutputHash string    // out_hash (ECT-C10)
	// Ext is the ect_ext object (ECT-C11), nil when absent.
	Ext json.RawMessage
	// PolicyDecision is ect_ext.pol_decision (ECT-C14), "" when absent.
	PolicyDecision string
}

// Result is a verified ECT.
type Result struct {
	Level   Level
	Alg     string // "ES256" or "EdDSA"; "" at L1
	KeyID   string // "" at L1
	Header  []byte // the JOSE header JSON as received; nil at L1
	Payload []byte // the payload JSON as received, unknown claims included (ECT-C13)
	Claims  *Claims
	// Partial is set when the DAG store lacked some predecessors and the
	// verifier's DAG checker is in partial mode (DAG-2); Missing lists them.
	Partial bool
	Missing []string
}
