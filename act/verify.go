package act

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/dag"
	"github.com/agentctx/agentctx/internal/claims"
	"github.com/agentctx/agentctx/internal/envelope"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/replay"
	"github.com/agentctx/agentctx/trust"
)

// Defaults of the verifier. Each has a Config field that overrides it.
const (
	DefaultSkew      = 60 * time.Second  // exp, nbf, iat and exec_ts checks
	DefaultMaxAge    = 900 * time.Second // ECT-V9, for mandates presented for use
	DefaultMaxPred   = 100               // ACT-R2, DAG-7
	DefaultMaxLength = 8192              // ECT-V1, bytes
)

// Config holds what a Verifier needs. Trust, Audience and Clock are required;
// zero tunables take the documented defaults.
type Config struct {
	// Trust finds keys by (identity, kid): the iss of a mandate, the sub of a
	// record (ACT-P3). Required.
	Trust trust.Resolver
	// Audience is this verifier's identity, checked against a mandate's aud
	// (ECT-V10). Records are verified without an audience check (ACT-P4).
	// Required.
	Audience string
	// Clock returns the current time, for example time.Now. Required.
	Clock func() time.Time

	Skew      time.Duration // 0 means DefaultSkew
	MaxAge    time.Duration // 0 means DefaultMaxAge
	MaxPred   int           // 0 means DefaultMaxPred
	MaxLength int           // 0 means DefaultMaxLength
	// NoLegacy refuses "par" for "pred" (draft -00), accepted by default.
	NoLegacy bool
	// SignatureCache, when positive, remembers up to that many signatures
	// that verified, as ect.Config.SignatureCache. 0: none.
	SignatureCache int
	// KeyCache holds the per-key precomputation of the signature checks;
	// verifiers of the same keys may share one. nil: the verifier's own.
	KeyCache *trust.KeyCache
	// Replay is the replay cache for records (ACT-V5); nil gives the verifier
	// its own. Mandates may be presented many times and are not cached.
	Replay *replay.Cache
	// DAG, when set, validates each verified record's place in its workflow
	// (ACT-V5).
	DAG dag.Validator
}

// Verifier verifies ACT mandates, delegation chains and records. It is safe
// for concurrent use.
type Verifier struct {
	cfg    Config
	opener envelope.Opener
}

// ErrConfig is wrapped by every configuration error of NewVerifier.
var ErrConfig = errors.New("act: invalid verifier configuration")

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	switch {
	case cfg.Trust == nil:
		return nil, fmt.Errorf("%w: Trust is required (the keys that may sign ACTs)", ErrConfig)
	case cfg.Audience == "":
		return nil, fmt.Errorf("%w: Audience is required (this verifier's own identity, checked against a mandate's aud)", ErrConfig)
	case cfg.Clock == nil:
		return nil, fmt.Errorf("%w: Clock is required (for example time.Now)", ErrConfig)
	case cfg.Skew < 0 || cfg.MaxAge < 0 || cfg.MaxPred < 0 || cfg.MaxLength < 0:
		return nil, fmt.Errorf("%w: Skew, MaxAge, MaxPred and MaxLength must not be negative", ErrConfig)
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxPred == 0 {
		cfg.MaxPred = DefaultMaxPred
	}
	if cfg.MaxLength == 0 {
		cfg.MaxLength = DefaultMaxLength
	}
	if cfg.Replay == nil {
		cfg.Replay = replay.New(replay.DefaultCapacity)
	}
	keys := cfg.KeyCache
	if keys == nil {
		keys = jws.NewKeyCache()
	}
	return &Verifier{cfg: cfg, opener: envelope.Opener{MaxLength: cfg.MaxLength, Typ: Typ, Trust: cfg.Trust, Sigs: envelope.NewSigCache(cfg.SignatureCache), Keys: keys}}, nil
}

// VerifyMandate verifies a mandate presented for use now (ECT-V1..V11 with
// typ act+jwt, ACT-V1, ACT-V2). parents are the parent mandates of a
// delegated mandate, nearest first (the ACT-Mandate header order).
func (v *Verifier) VerifyMandate(ctx context.Context, token string, parents []string) (*Result, error) {
	return v.Verify(ctx, token, parents, PhaseMandate)
}

// VerifyRecord verifies a record (ACT-V4, ACT-V5), with its time checks as of
// exec_ts. supporting is optional: the record's mandate followed by that
// mandate's parents, nearest first. With it the mandate is verified and
// compared claim by claim (ACT-P3); without it the result says
// MandateVerified false.
func (v *Verifier) VerifyRecord(ctx context.Context, token string, supporting []string) (*Result, error) {
	return v.Verify(ctx, token, supporting, PhaseRecord)
}

// Verify verifies token as phase want; PhaseDetect takes the phase the
// claims show (ACT-P1). The zero Phase is refused (phase_error): there is no
// "any" default (ACT-V3). supporting is as for VerifyMandate or
// VerifyRecord.
func (v *Verifier) Verify(ctx context.Context, token string, supporting []string, want Phase) (*Result, error) {
	if err := askedPhase(want); err != nil {
		return nil, err
	}
	res, p, err := v.verifyStateless(ctx, token, supporting, want, v.cfg.Clock())
	if err != nil {
		return nil, err
	}
	if res.Phase == PhaseRecord {
		if err := v.stateful(ctx, res, p, v.cfg.Clock()); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// VerifyAudit verifies a token taken from (or being appended to) a ledger,
// as of at, the ledger's receipt time: a mandate without the audience check
// and the max age (it is evidence, not presented for use), a record as usual;
// no replay check, which the ledger's uniqueness rule covers.
func (v *Verifier) VerifyAudit(ctx context.Context, token string, supporting []string, at time.Time) (*Result, error) {
	res, p, err := v.open(ctx, token)
	if err != nil {
		return nil, err
	}
	if res.Phase == PhaseRecord {
		err = v.checkRecord(ctx, res, p, supporting, PhaseDetect, at)
	} else {
		err = v.checkMandate(p, PhaseDetect, at, false)
		if err == nil {
			err = v.checkChain(ctx, &p.mandate, supporting, at)
		}
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// VerifyBatch verifies tokens in parallel, each with its supporting tokens
// (supporting may be nil), as phase want, and returns one result or error per
// token in input order. The replay and DAG checks run afterwards in input
// order, so of two copies of a record the later one is the replay.
func (v *Verifier) VerifyBatch(ctx context.Context, tokens []string, supporting [][]string, want Phase, workers int) ([]*Result, []error) {
	if err := askedPhase(want); err != nil {
		errs := make([]error, len(tokens))
		for i := range errs {
			errs[i] = err
		}
		return make([]*Result, len(tokens)), errs
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]*Result, len(tokens))
	parsedAll := make([]*parsed, len(tokens))
	errs := make([]error, len(tokens))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers && w < len(tokens); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(tokens) {
					return
				}
				var sup []string
				if supporting != nil {
					sup = supporting[i]
				}
				results[i], parsedAll[i], errs[i] = v.verifyStateless(ctx, tokens[i], sup, want, v.cfg.Clock())
			}
		}()
	}
	wg.Wait()
	now := v.cfg.Clock()
	for i, res := range results {
		if errs[i] == nil && res.Phase == PhaseRecord {
			if err := v.stateful(ctx, res, parsedAll[i], now); err != nil {
				results[i], errs[i] = nil, err
			}
		}
	}
	return results, errs
}

// stateful applies the DAG rules and replay (ECT-V12 as ACT-V5) to a
// record; the record is remembered only once every other check passed.
func (v *Verifier) stateful(ctx context.Context, res *Result, p *parsed, now time.Time) error {
	r := &p.rec
	if v.cfg.Replay.Seen(r.WorkflowID, r.ID, now) {
		return replay.Err(r.ID)
	}
	if v.cfg.DAG != nil {
		verdict, err := v.cfg.DAG.Check(ctx, p.node())
		if err != nil {
			return err
		}
		if len(verdict.Missing) > 0 {
			res.Partial, res.Missing = true, verdict.Missing
		}
	}
	// A record is evidence with no max age of its own (it is checked as of
	// exec_ts): it is remembered for MaxAge from when it was seen, a window
	// its sender cannot stretch [decision D-43].
	return v.cfg.Replay.Add(r.WorkflowID, r.ID, now.Add(v.cfg.MaxAge), now)
}

// parse applies ECT-V1..ECT-V7 to token: the envelope, the signature by the
// phase's signer, the claim types. p.phase is PhaseAny for a token that is
// neither a mandate nor a record (refused at ACT-V1).
func (v *Verifier) parse(ctx context.Context, token string) (*parsed, error) {
	t, err := v.opener.Open(ctx, token, signerOf) // ECT-V1..ECT-V6
	if err != nil {
		return nil, err
	}
	phase, phaseErr := detectPhase(t.Members)
	if phaseErr != nil {
		phase = PhaseMandate // checked as a mandate, refused at ACT-V1
	}
	p, err := parseACT(t.Members, phase, !v.cfg.NoLegacy) // ECT-V7
	if err != nil {
		return nil, err
	}
	if phaseErr != nil {
		p.phase = phaseNone
	}
	p.members, p.token, p.jws = t.Members, token, t
	return p, nil
}

// result returns the public result of a parsed token.
func (p *parsed) result() *Result {
	t := p.jws
	return &Result{Phase: p.phase, Token: p.token, Alg: t.Header.Alg, KeyID: t.Header.Kid, Header: t.Header.Raw, Payload: t.Payload, Mandate: &p.mandate, p: p}
}

// open parses token and returns its result too.
func (v *Verifier) open(ctx context.Context, token string) (*Result, *parsed, error) {
	p, err := v.parse(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	return p.result(), p, nil
}

func (v *Verifier) verifyStateless(ctx context.Context, token string, supporting []string, want Phase, now time.Time) (*Result, *parsed, error) {
	res, p, err := v.open(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	if res.Phase == PhaseRecord {
		err = v.checkRecord(ctx, res, p, supporting, want, now)
	} else {
		err = v.checkMandate(p, want, now, true)
		if err == nil {
			err = v.checkChain(ctx, &p.mandate, supporting, now) // ACT-V2
		}
		// SPEC: ACT-V3 only a mandate verified for use, chain included, can authorize.
		res.forUse = err == nil
	}
	if err != nil {
		return nil, nil, err
	}
	return res, p, nil
}

// askedPhase refuses the zero Phase (ACT-V3: no "any" default).
func askedPhase(want Phase) error {
	if want != PhaseMandate && want != PhaseRecord && want != PhaseDetect {
		return errf(agentctx.CodePhaseError, "ACT-V3", "", "no phase asked for: pass PhaseMandate, PhaseRecord or PhaseDetect")
	}
	return nil
}

// phaseCheck applies ACT-V1.
func phaseCheck(got, want Phase) error {
	if got == phaseNone {
		return errf(agentctx.CodePhaseError, "ACT-P1", "", "token is neither a mandate nor a record (it has some but not all of exec_act, exec_ts, status)")
	}
	if want != PhaseDetect && got != want {
		return errf(agentctx.CodePhaseError, "ACT-V1", "", "expected a %s, got a %s", want, got)
	}
	return nil
}

// checkMandate applies ECT-V8..V11 and ACT-V1 to a mandate as of at; the
// caller checks its chain (ACT-V2). forUse applies the audience check and the
// max age (a mandate presented for use); a parent in a chain or a record's
// mandate is checked without them.
func (v *Verifier) checkMandate(p *parsed, want Phase, at time.Time, forUse bool) error {
	set := p.set
	maxAge := v.cfg.MaxAge
	if !forUse {
		maxAge = 0
	}
	if err := set.CheckTimes(at, v.cfg.Skew, maxAge); err != nil { // ECT-V8, ECT-V9
		return err
	}
	if forUse {
		if err := set.CheckAudience(v.cfg.Audience); err != nil { // ECT-V10
			return err
		}
	}
	if err := set.CheckFormats(rules, v.cfg.MaxPred); err != nil { // ECT-V11
		return err
	}
	return phaseCheck(p.phase, want) // ACT-V1
}

// checkRecord applies ACT-V4 (and the record's share of ECT-V8..V11).
func (v *Verifier) checkRecord(ctx context.Context, res *Result, p *parsed, supporting []string, want Phase, now time.Time) error {
	set, r := p.set, &p.rec
	skew := v.cfg.Skew
	// SPEC: ACT-R3 iat <= exec_ts <= exp + skew; time checks as of exec_ts.
	if r.ExecTS.After(now.Add(skew)) {
		return errf(agentctx.CodeInvalidClaim, "ACT-R3", "exec_ts", "exec_ts is %s in the future", wire.Duration(r.ExecTS.Sub(now)))
	}
	if err := execWindow(r, skew); err != nil {
		return err
	}
	// nbf as of exec_ts (ECT-V8); iat and exp are execWindow's bounds.
	if set.Has&claims.Nbf != 0 && set.Nbf.After(r.ExecTS.Add(skew)) {
		return errf(agentctx.CodeNotYetValid, "ECT-V8", "nbf", "the mandate was not valid yet when the work finished")
	}
	if err := set.CheckFormats(rules, v.cfg.MaxPred); err != nil {
		return err
	}
	if !IsActionName(r.ExecAct) {
		return errf(agentctx.CodeInvalidClaim, "ACT-A1", "exec_act", "exec_act %q does not follow the action grammar", r.ExecAct)
	}
	if err := phaseCheck(res.Phase, want); err != nil { // ACT-V1
		return err
	}
	// SPEC: ACT-R1 exec_act is one of the mandate's capabilities (DAG-8).
	if p.mandate.Capability(r.ExecAct) == nil {
		return errf(agentctx.CodeCapabilityViolation, "ACT-R1", "exec_act", "exec_act %q is not among the mandate's capabilities", r.ExecAct)
	}
	// SPEC: ACT-R6 err with failed, never with completed.
	switch {
	case r.Status == StatusFailed && r.Err == nil:
		return errf(agentctx.CodeMissingClaim, "ACT-R6", "err", "a failed record needs err")
	case r.Status == StatusCompleted && r.Err != nil:
		return errf(agentctx.CodeInvalidClaim, "ACT-R6", "err", "a completed record must not carry err")
	}
	res.Record = r
	// SPEC: ACT-P3a a record-only result carries no mandate: its mandate
	// claims are the executor's own.
	res.Mandate = nil
	if len(supporting) == 0 {
		return nil // "record only"
	}
	// SPEC: ACT-P3 the mandate verifies (as of exec_ts) and its claims equal the record's.
	mp, err := v.parse(ctx, supporting[0])
	if err != nil {
		return mandateErr(err)
	}
	if err := v.checkMandate(mp, PhaseMandate, r.ExecTS, false); err != nil {
		return mandateErr(err)
	}
	if err := v.checkChain(ctx, &mp.mandate, supporting[1:], r.ExecTS); err != nil {
		return mandateErr(err)
	}
	if err := sameMandate(mp.members, p.members); err != nil {
		return err
	}
	res.Mandate, res.MandateVerified = &mp.mandate, true
	return nil
}

// execWindow applies ACT-R3: iat <= exec_ts <= exp + skew, both ends
// inclusive. NewRecord calls it with no skew, so that every record it signs
// verifies; verifiers call it with theirs.
func execWindow(r *Record, skew time.Duration) error {
	if r.ExecTS.Before(r.IssuedAt) {
		return errf(agentctx.CodeInvalidClaim, "ACT-R3", "exec_ts", "exec_ts is before the mandate's iat")
	}
	if r.ExecTS.After(r.Expiry.Add(skew)) {
		return errf(agentctx.CodeExpired, "ACT-R3", "exec_ts", "the mandate expired %s before the work finished", wire.Duration(r.ExecTS.Sub(r.Expiry)))
	}
	return nil
}

// mandateErr marks a failure of a record's supporting mandate.
func mandateErr(err error) error {
	var e *agentctx.Error
	if errors.As(err, &e) {
		c := *e
		c.Message = "record's mandate: " + e.Message
		return &c
	}
	return err
}

// sameMandate applies ACT-P3: every mandate claim appears in the record with
// an equal value, and the record adds only record claims.
func sameMandate(mandate, record []jsonx.Member) error {
	// Fast path: a record built by NewRecord repeats the mandate's members
	// first, in order and byte for byte.
	if len(record) >= len(mandate) {
		same := true
		for i, m := range mandate {
			if record[i].Name != m.Name || !bytes.Equal(record[i].Value, m.Value) {
				same = false
				break
			}
		}
		if same {
			for _, r := range record[len(mandate):] {
				if !isRecordOnly(r.Name) {
					return errf(agentctx.CodeMandateMismatch, "ACT-P3", r.Name, "record adds %s, which its mandate does not have", r.Name)
				}
			}
			return nil
		}
	}
	rec := make(map[string][]byte, len(record))
	for _, m := range record {
		rec[m.Name] = m.Value
	}
	for _, m := range mandate {
		rv, ok := rec[m.Name]
		if !ok || !jsonEqual(m.Value, rv) {
			return errf(agentctx.CodeMandateMismatch, "ACT-P3", m.Name, "record's %s differs from its mandate's", m.Name)
		}
		delete(rec, m.Name)
	}
	for name := range rec {
		if !isRecordOnly(name) {
			return errf(agentctx.CodeMandateMismatch, "ACT-P3", name, "record adds %s, which its mandate does not have", name)
		}
	}
	return nil
}

func isRecordOnly(name string) bool {
	for _, r := range recordOnly {
		if r == name {
			return true
		}
	}
	return false
}

func broken(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeDelegationBroken, "ACT-D5", "del", format, args...)
}

// checkChain applies ACT-D1..ACT-D5 to a mandate and its parents (nearest
// first), every link verified as of at.
func (v *Verifier) checkChain(ctx context.Context, leaf *Mandate, parents []string, at time.Time) error {
	d := leaf.Delegation
	if d == nil {
		if len(parents) > 0 {
			return broken("a root mandate (no del) was given %d parent tokens", len(parents))
		}
		return nil
	}
	// SPEC: ACT-D1 depth <= max_depth.
	if d.Depth > d.MaxDepth {
		return agentctx.Errorf(agentctx.CodeDelegationDepth, "ACT-D1", "del", "delegation depth %d exceeds max_depth %d", d.Depth, d.MaxDepth)
	}
	if len(d.Chain) != d.Depth {
		return broken("del.chain has %d links for depth %d", len(d.Chain), d.Depth)
	}
	if len(parents) != d.Depth {
		return broken("a mandate at depth %d needs %d parent tokens, got %d", d.Depth, d.Depth, len(parents))
	}
	cur := leaf
	for i, ptok := range parents {
		ptok = strings.TrimSpace(ptok)
		cd := cur.Delegation
		link := cd.Chain[len(cd.Chain)-1]
		// SPEC: ACT-D5 the hash in chain names exactly this parent.
		if wire.HashString(ptok) != link.Hash {
			return broken("parent %d is not the token the chain names (hash differs)", i+1)
		}
		pp, err := v.parse(ctx, ptok)
		if err != nil {
			return &agentctx.Error{Code: agentctx.CodeDelegationBroken, Rule: "ACT-D5", Claim: "del", Message: fmt.Sprintf("parent %d does not verify: %v", i+1, err), Err: err}
		}
		if err := v.checkMandate(pp, PhaseMandate, at, false); err != nil {
			return &agentctx.Error{Code: agentctx.CodeDelegationBroken, Rule: "ACT-D5", Claim: "del", Message: fmt.Sprintf("parent %d does not verify: %v", i+1, err), Err: err}
		}
		parent := &pp.mandate
		if parent.Issuer != link.Issuer || !strings.EqualFold(parent.ID, link.ID) {
			return broken("parent %d is %s/%s, the chain names %s/%s", i+1, parent.Issuer, parent.ID, link.Issuer, link.ID)
		}
		// SPEC: ACT-D2 the delegated mandate's iss is the parent's sub.
		if cur.Issuer != parent.Subject {
			return agentctx.Errorf(agentctx.CodeDelegationBroken, "ACT-D2", "iss", "delegated mandate is issued by %q, the parent authorizes %q", cur.Issuer, parent.Subject)
		}
		if parent.depth() != cd.Depth-1 || !chainPrefix(parent, cd.Chain[:len(cd.Chain)-1]) {
			return broken("parent %d's own delegation does not match the chain", i+1)
		}
		// SPEC: ACT-D1 max_depth may only shrink down the chain.
		if cd.MaxDepth > parent.maxDepth() {
			return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D1", "del", "max_depth %d is wider than the parent's %d", cd.MaxDepth, parent.maxDepth())
		}
		if err := attenuates(parent, cur); err != nil {
			return err
		}
		cur = parent
	}
	return nil
}

func chainPrefix(parent *Mandate, want []Link) bool {
	var have []Link
	if parent.Delegation != nil {
		have = parent.Delegation.Chain
	}
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i].Issuer != want[i].Issuer || !strings.EqualFold(have[i].ID, want[i].ID) || have[i].Hash != want[i].Hash {
			return false
		}
	}
	return true
}

// Approval is a human approval the caller obtained for one action of one
// mandate (ACT-M10, ACT-V3).
type Approval struct {
	MandateID string // the mandate's jti
	Action    string
	Approver  string // must equal oversight.approver when the mandate names one
}

// Authorize applies ACT-V3 to a mandate verified for use (VerifyMandate, or
// Verify with PhaseMandate or PhaseDetect, which check the audience, the
// times and the whole delegation chain): action must be one of its
// capabilities (capability_violation), and an action listed in
// oversight.approval_required needs a matching approval
// (approval_required). Any other result is refused with phase_error: a
// record, a record's mandate claims, a parent checked as evidence, or a
// token read with ParseUnverified never authorize anything (ACT-P3a).
//
// It returns the capability, whose constraints the caller enforces. A
// delegated mandate may carry constraint keys its parent did not (ACT-D4):
// the caller MUST refuse a capability that holds a constraint key it does
// not understand (fail closed).
func (r *Result) Authorize(action string, approval *Approval) (*Capability, error) {
	if r == nil || !r.forUse || r.Phase != PhaseMandate || r.Mandate == nil {
		return nil, errf(agentctx.CodePhaseError, "ACT-V3", "", "only a mandate verified for use can authorize an action (use VerifyMandate)")
	}
	m := r.Mandate
	c := m.Capability(action)
	if c == nil {
		return nil, errf(agentctx.CodeCapabilityViolation, "ACT-V3", "cap", "action %q is not among the mandate's capabilities", action)
	}
	if m.Oversight != nil {
		for _, a := range m.Oversight.ApprovalRequired {
			if a != action {
				continue
			}
			ok := approval != nil && approval.Action == action && strings.EqualFold(approval.MandateID, m.ID) &&
				(m.Oversight.Approver == "" || approval.Approver == m.Oversight.Approver)
			if !ok {
				return nil, errf(agentctx.CodeApprovalRequired, "ACT-V3", "oversight", "action %q needs a human approval first", action)
			}
		}
	}
	return c, nil
}

func actions(m *Mandate) []string {
	out := make([]string, len(m.Capabilities))
	for i, c := range m.Capabilities {
		out[i] = c.Action
	}
	return out
}

// node reduces a verified token to its place in the task graph: a mandate
// at its iat, a record at its exec_ts (DAG-3).
func (p *parsed) node() dag.Node {
	m := &p.mandate
	n := dag.Node{Kind: dag.KindACTMandate, JTI: m.ID, WID: m.WorkflowID, Pred: []string{}, Time: m.IssuedAt,
		Issuer: m.Issuer, Subject: m.Subject, Caps: actions(m)}
	if p.phase == PhaseRecord {
		r := &p.rec
		n.Kind, n.Pred, n.Time, n.ExecAct, n.Status = dag.KindACTRecord, r.Pred, r.ExecTS, r.ExecAct, r.Status
	}
	return n
}
