// Package act creates and verifies Agent Context Tokens
// (draft-nennemann-act-01, profile in spec/act.md).
//
// An ACT lives in two phases, both compact JWS with the header
// {"alg":...,"kid":...,"typ":"act+jwt"}:
//
//  1. a mandate, signed by the authorizing agent (iss), lets the agent sub
//     perform the actions of cap for task until exp:
//
//     {"iss":"agent-a","sub":"agent-b","aud":["agent-b"],"iat":1767225600,
//     "exp":1767226500,"jti":"<uuid>","task":{"purpose":"review the spec"},
//     "cap":[{"action":"read.data","constraints":{"max_calls":10}}]}
//
//  2. a record, signed by the executing agent (sub) with the same jti: every
//     mandate claim unchanged, plus exec_act, pred, exec_ts, status, and
//     optionally inp_hash, out_hash and err.
//
// A holder of a mandate may delegate a narrower one (Delegate); the child
// carries del = {depth, max_depth, chain}, and a verifier needs the parent
// tokens to check every link.
//
// Create with NewMandate, Delegate and NewRecord; verify with a Verifier.
// Every failure is an *agentctx.Error with the codes of spec/act.md.
package act

import (
	"encoding/json"
	"time"

	"github.com/agentctx/agentctx/dag"
)

// Typ is the media type of both phases.
const Typ = "act+jwt"

// Defaults of the profile.
const (
	DefaultMandateLifetime = 900 * time.Second // ACT-M4
	DefaultMaxDepth        = 3                 // ACT-D1, when the root sets none
	MaxActionLength        = 128               // ACT-A1
)

// Status values of a record (ACT-R4).
const (
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusPartial   = "partial"
)

// Data sensitivity values of task.data_sensitivity (ACT-M7).
var sensitivities = []string{"public", "internal", "confidential", "restricted"}

// Phase is the life phase of an ACT (ACT-P1).
type Phase int

// The phases. The zero Phase is no phase: a verifier asked for it refuses
// the token (ACT-V3: no "any" default). PhaseDetect, asked for by name,
// takes the phase the claims show (ACT-P1).
const (
	PhaseMandate Phase = iota + 1
	PhaseRecord
	PhaseDetect
)

// phaseNone marks a token that is neither a mandate nor a record (ACT-P1).
const phaseNone Phase = 0

// String returns "mandate", "record", "detect" or "none".
func (p Phase) String() string {
	switch p {
	case PhaseMandate:
		return "mandate"
	case PhaseRecord:
		return "record"
	case PhaseDetect:
		return "detect"
	}
	return "none"
}

// Task describes the work a mandate is for (ACT-M7).
type Task struct {
	Purpose         string `json:"purpose"`
	CreatedBy       string `json:"created_by,omitempty"`
	DataSensitivity string `json:"data_sensitivity,omitempty"`
}

// Capability is one action a mandate allows, with optional constraints
// (ACT-M8, ACT-D4).
type Capability struct {
	Action      string          `json:"action"`
	Constraints json.RawMessage `json:"constraints,omitempty"`
}

// Link is one entry of a delegation chain: a parent mandate (ACT-D1).
type Link struct {
	Issuer string `json:"iss"`
	ID     string `json:"jti"`
	Hash   string `json:"hash"` // hash value of the parent's compact JWS
}

// Delegation is the del claim (ACT-M9, ACT-D1).
type Delegation struct {
	Depth    int    `json:"depth"`
	MaxDepth int    `json:"max_depth"`
	Chain    []Link `json:"chain"`
}

// Oversight is the oversight claim (ACT-M10).
type Oversight struct {
	ApprovalRequired []string `json:"approval_required,omitempty"`
	Approver         string   `json:"approver,omitempty"`
}

// Mandate holds the claims of phase 1, which a record repeats unchanged.
type Mandate struct {
	Issuer       string       // iss (ACT-M1)
	Subject      string       // sub (ACT-M2), the agent that will sign the record
	Audience     []string     // aud (ACT-M3)
	IssuedAt     time.Time    // iat (ACT-M4)
	Expiry       time.Time    // exp (ACT-M4)
	ID           string       // jti (ACT-M5), the task id
	WorkflowID   string       // wid (ACT-M6)
	Task         Task         // task (ACT-M7)
	Capabilities []Capability // cap (ACT-M8)
	Delegation   *Delegation  // del (ACT-M9), nil for a root without one
	Oversight    *Oversight   // oversight (ACT-M10)
}

// depth returns the delegation depth (0 for a root).
func (m *Mandate) depth() int {
	if m.Delegation == nil {
		return 0
	}
	return m.Delegation.Depth
}

// maxDepth returns the delegation limit in force for m.
func (m *Mandate) maxDepth() int {
	if m.Delegation == nil {
		return DefaultMaxDepth
	}
	return m.Delegation.MaxDepth
}

// Capability returns the capability for action, or nil.
func (m *Mandate) Capability(action string) *Capability {
	for i := range m.Capabilities {
		if m.Capabilities[i].Action == action {
			return &m.Capabilities[i]
		}
	}
	return nil
}

// ExecError is the err claim of a failed record (ACT-R6).
type ExecError struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Record holds the claims of phase 2.
type Record struct {
	Mandate              // the mandate's claims, unchanged
	ExecAct    string    // exec_act (ACT-R1)
	Pred       []string  // pred (ACT-R2)
	ExecTS     time.Time // exec_ts (ACT-R3)
	Status     string    // status (ACT-R4)
	InputHash  string    // inp_hash (ACT-R5)
	OutputHash string    // out_hash (ACT-R5)
	Err        *ExecError
}

// Result is a verified ACT.
type Result struct {
	Phase   Phase
	Token   string // the compact JWS as verified
	Alg     string
	KeyID   string
	Header  []byte // JOSE header JSON as received
	Payload []byte // payload JSON as received
	// Mandate is the verified mandate: the token itself for a mandate, the
	// supplied mandate for a record verified with it. It is nil for a
	// record verified "record only": the mandate claims a record repeats are
	// self-asserted by its executor (ACT-P3a), see Record.Mandate.
	Mandate *Mandate
	// Record is set for a record.
	Record *Record
	// MandateVerified reports, for a record, whether its mandate (and the
	// mandate's chain) was supplied and verified (ACT-P3); false means the
	// record verified as "record only".
	MandateVerified bool
	// Partial is set for a record whose predecessors the verifier's DAG
	// store lacked, in partial mode (DAG-2); Missing lists them.
	Partial bool
	Missing []string

	p *parsed
	// forUse is set only by a verification of a mandate presented for use
	// (audience, times, whole chain): what Authorize requires (ACT-V3).
	forUse bool
}

// Node returns the token's node in its workflow's task graph: a mandate at
// its iat, a record at its exec_ts.
func (r *Result) Node() dag.Node { return r.p.node() }

// DelegationDepth returns the delegation depth of the mandate (for a record,
// of the mandate claims it carries).
func (r *Result) DelegationDepth() int {
	if r.Record != nil {
		return r.Record.Mandate.depth()
	}
	return r.Mandate.depth()
}
