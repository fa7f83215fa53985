package act

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/trust"
)

// mandateJSON fixes the order in which mandates are written.
type mandateJSON struct {
	Iss       string       `json:"iss"`
	Sub       string       `json:"sub"`
	Aud       []string     `json:"aud"`
	Iat       int64        `json:"iat"`
	Exp       int64        `json:"exp"`
	Jti       string       `json:"jti"`
	Wid       string       `json:"wid,omitempty"`
	Task      Task         `json:"task"`
	Cap       []Capability `json:"cap"`
	Del       *Delegation  `json:"del,omitempty"`
	Oversight *Oversight   `json:"oversight,omitempty"`
}

func header(key *trust.SigningKey) []byte {
	h, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{key.Alg(), key.KeyID(), Typ})
	return h
}

// NewMandate fills the defaults into m (iat = now, exp = iat +
// DefaultMandateLifetime, jti = a new UUID), checks it with the rules a
// verifier applies, and signs it with key, the key of m.Issuer. A mandate
// that would not verify is never signed. m is updated in place.
func NewMandate(key *trust.SigningKey, m *Mandate, now time.Time) (string, error) {
	now = now.Truncate(time.Second)
	if m.IssuedAt.IsZero() {
		m.IssuedAt = now
	}
	if m.Expiry.IsZero() {
		m.Expiry = m.IssuedAt.Add(DefaultMandateLifetime)
	}
	if m.ID == "" {
		m.ID = wire.NewUUID()
	}
	payload, err := json.Marshal(mandateJSON{
		Iss: m.Issuer, Sub: m.Subject, Aud: m.Audience, Iat: m.IssuedAt.Unix(), Exp: m.Expiry.Unix(),
		Jti: m.ID, Wid: m.WorkflowID, Task: m.Task, Cap: m.Capabilities, Del: m.Delegation, Oversight: m.Oversight,
	})
	if err != nil {
		return "", fmt.Errorf("encoding mandate: %w", err)
	}
	// SPEC: ECT-K1 applied to ACT: validate with the verifier's rules first.
	p, err := checkPayload(payload, PhaseMandate)
	if err != nil {
		return "", err
	}
	if d := p.mandate.Delegation; d != nil && d.Depth == 0 && len(d.Chain) != 0 {
		return "", broken("a root mandate's chain must be empty")
	}
	return key.Sign(header(key), payload)
}

// checkPayload parses a payload about to be signed with the verifier's claim
// rules (types and formats).
func checkPayload(payload []byte, phase Phase) (*parsed, error) {
	members, err := jsonx.ParseObject(payload)
	if err != nil {
		return nil, err
	}
	p, err := parseACT(members, phase, false)
	if err != nil {
		return nil, err
	}
	if err := p.set.CheckFormats(rules, DefaultMaxPred); err != nil {
		return nil, err
	}
	p.members = members
	return p, nil
}

// Delegate issues a narrower mandate for part of the work of parent, signed
// with key, the key of parent's subject (ACT-D1..ACT-D4). It sets child's
// iss to the parent's sub, its wid to the parent's when unset, and its del
// (depth + 1, the parent's chain plus a link to the parent). child.Delegation
// may carry a smaller MaxDepth; zero keeps the parent's. A child wider than
// its parent, or beyond the depth limit, is refused and nothing is signed.
// parent must come from a Verifier or ParseUnverified.
func Delegate(key *trust.SigningKey, parent *Result, child *Mandate, now time.Time) (string, error) {
	if parent.Phase != PhaseMandate {
		return "", errf(agentctx.CodePhaseError, "ACT-V1", "", "only a mandate can be delegated")
	}
	pm := parent.Mandate
	if child.Issuer != "" && child.Issuer != pm.Subject {
		return "", broken("the delegating agent must be the parent's sub %q, not %q", pm.Subject, child.Issuer)
	}
	child.Issuer = pm.Subject
	if child.WorkflowID == "" {
		child.WorkflowID = pm.WorkflowID
	}
	maxDepth := pm.maxDepth()
	if child.Delegation != nil && child.Delegation.MaxDepth != 0 {
		maxDepth = child.Delegation.MaxDepth
	}
	var chain []Link
	if pm.Delegation != nil {
		chain = slices.Clone(pm.Delegation.Chain)
	}
	chain = append(chain, Link{Issuer: pm.Issuer, ID: pm.ID, Hash: agentctx.HashBytes([]byte(parent.Token))})
	child.Delegation = &Delegation{Depth: pm.depth() + 1, MaxDepth: maxDepth, Chain: chain}
	if child.Expiry.IsZero() {
		iat := child.IssuedAt
		if iat.IsZero() {
			iat = now.Truncate(time.Second)
		}
		child.Expiry = iat.Add(DefaultMandateLifetime)
		if child.Expiry.After(pm.Expiry) {
			child.Expiry = pm.Expiry
		}
	}
	// SPEC: ACT-D4a the parent's oversight is kept for the actions the child holds.
	child.Oversight = inheritOversight(pm, child)
	d := child.Delegation
	if d.Depth > d.MaxDepth {
		return "", agentctx.Errorf(agentctx.CodeDelegationDepth, "ACT-D1", "del", "delegation depth %d would exceed max_depth %d", d.Depth, d.MaxDepth)
	}
	if d.MaxDepth > pm.maxDepth() {
		return "", agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D1", "del", "max_depth %d is wider than the parent's %d", d.MaxDepth, pm.maxDepth())
	}
	if err := attenuates(pm, child); err != nil {
		return "", err
	}
	return NewMandate(key, child, now)
}

// inheritOversight returns the child's oversight with what the parent
// requires added: every parent action needing approval that the child still
// holds, and the parent's approver when the child names none (ACT-D4a). A
// child that names another approver keeps it and is refused by attenuates.
func inheritOversight(parent, child *Mandate) *Oversight {
	po := parent.Oversight
	if po == nil {
		return child.Oversight
	}
	o := &Oversight{}
	if child.Oversight != nil {
		*o = *child.Oversight
		o.ApprovalRequired = slices.Clone(child.Oversight.ApprovalRequired)
	}
	for _, a := range po.ApprovalRequired {
		if child.Capability(a) != nil && !slices.Contains(o.ApprovalRequired, a) {
			o.ApprovalRequired = append(o.ApprovalRequired, a)
		}
	}
	if o.Approver == "" {
		o.Approver = po.Approver
	}
	if len(o.ApprovalRequired) == 0 && o.Approver == "" {
		return nil
	}
	return o
}

// RecordInput is what the executing agent reports about its work.
type RecordInput struct {
	ExecAct    string    // the action performed, one of the mandate's capabilities
	Pred       []string  // predecessor task ids; nil is a root ([])
	ExecTS     time.Time // when execution finished; zero means now
	Status     string    // StatusCompleted, StatusFailed or StatusPartial
	InputHash  string    // agentctx.HashBytes of the exact input, optional
	OutputHash string    // agentctx.HashBytes of the exact output, optional
	Err        *ExecError
}

// NewRecord builds the record of mandate (ACT-P2): the mandate's claims
// copied unchanged, plus in's, signed with key by executor, which must be the
// mandate's sub (phase_error otherwise). The record keeps the mandate's jti
// and iat. It is checked with the verifier's rules before signing.
func NewRecord(key *trust.SigningKey, executor string, mandate *Result, in RecordInput, now time.Time) (string, error) {
	if mandate.Phase != PhaseMandate {
		return "", errf(agentctx.CodePhaseError, "ACT-P2", "", "a record is built from a mandate")
	}
	m := mandate.Mandate
	// SPEC: ACT-P2 the signer's identity is the mandate's sub.
	if executor != m.Subject {
		return "", errf(agentctx.CodePhaseError, "ACT-P2", "sub", "the record must be signed by the mandate's sub %q, not %q", m.Subject, executor)
	}
	members, err := jsonx.ParseObject(mandate.Payload)
	if err != nil {
		return "", err
	}
	for _, mem := range members {
		if isRecordOnly(mem.Name) {
			return "", errf(agentctx.CodePhaseError, "ACT-P2", mem.Name, "the mandate already carries the record claim %s", mem.Name)
		}
	}
	if in.ExecTS.IsZero() {
		in.ExecTS = now
	}
	if in.Pred == nil {
		in.Pred = []string{}
	}
	extra, err := json.Marshal(struct {
		ExecAct string     `json:"exec_act"`
		Pred    []string   `json:"pred"`
		ExecTS  int64      `json:"exec_ts"`
		Status  string     `json:"status"`
		InpHash string     `json:"inp_hash,omitempty"`
		OutHash string     `json:"out_hash,omitempty"`
		Err     *ExecError `json:"err,omitempty"`
	}{in.ExecAct, in.Pred, in.ExecTS.Unix(), in.Status, in.InputHash, in.OutputHash, in.Err})
	if err != nil {
		return "", err
	}
	// The mandate's members, as received, then the record's.
	body := bytes.TrimSpace(mandate.Payload)
	body = bytes.TrimSpace(body[:len(body)-1]) // a verified payload is an object: drop its final '}'
	payload := make([]byte, 0, len(body)+len(extra)+1)
	payload = append(append(append(payload, body...), ','), extra[1:]...)
	p, err := checkPayload(payload, PhaseRecord)
	if err != nil {
		return "", err
	}
	r := &p.rec
	switch {
	case m.Capability(r.ExecAct) == nil:
		return "", errf(agentctx.CodeCapabilityViolation, "ACT-R1", "exec_act", "exec_act %q is not among the mandate's capabilities", r.ExecAct)
	case !IsActionName(r.ExecAct):
		return "", errf(agentctx.CodeInvalidClaim, "ACT-A1", "exec_act", "exec_act %q does not follow the action grammar", r.ExecAct)
	case r.Status == "":
		return "", errf(agentctx.CodeInvalidClaim, "ACT-R4", "status", "status must be completed, failed or partial")
	case r.Status == StatusFailed && r.Err == nil:
		return "", errf(agentctx.CodeMissingClaim, "ACT-R6", "err", "a failed record needs err")
	case r.Status == StatusCompleted && r.Err != nil:
		return "", errf(agentctx.CodeInvalidClaim, "ACT-R6", "err", "a completed record must not carry err")
	}
	// SPEC: ACT-R3 the signer allows no skew: a record it signs verifies anywhere.
	if err := execWindow(r, 0); err != nil {
		return "", err
	}
	return key.Sign(header(key), payload)
}

// ParseUnverified reads an ACT WITHOUT verifying anything: not the
// signature, not the issuer, not the times. It serves to build on a token the
// caller already verified, or will have verified downstream (the CLI's
// delegate and record commands, which hold no trust material).
func ParseUnverified(token string) (*Result, error) {
	token = strings.TrimSpace(token)
	t, err := jws.Parse(token, DefaultMaxLength)
	if err != nil {
		return nil, err
	}
	phase, err := detectPhase(t.Members)
	if err != nil {
		return nil, err
	}
	p, err := parseACT(t.Members, phase, true)
	if err != nil {
		return nil, err
	}
	res := &Result{Phase: phase, Token: token, Alg: t.Header.Alg, KeyID: t.Header.Kid, Header: t.Header.Raw, Payload: t.Payload, Mandate: &p.mandate, p: p}
	if phase == PhaseRecord {
		res.Record, res.Mandate = &p.rec, nil // ACT-P3a: Record.Mandate holds its claims
	}
	return res, nil
}
