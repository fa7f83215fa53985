package ect

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
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

// Config holds what a Verifier needs. Trust, Audience and Clock are required:
// the zero value is refused by NewVerifier, never treated as "skip the check".
// Zero tunables take the documented defaults.
type Config struct {
	// Trust finds the verification key for (iss, kid). Required.
	Trust trust.Resolver
	// Audience is this verifier's own identity; it must appear in aud
	// (ECT-V10). Required.
	Audience string
	// Clock returns the current time, for example time.Now. Required.
	Clock func() time.Time

	// MinLevel is the lowest assurance level accepted (ECT-L2); 0 means L2.
	// L1 accepts unsigned tokens: use it only in closed test beds. L3 accepts
	// only tokens for which Receipts holds a ledger receipt; without Receipts
	// every token is refused with level_too_low.
	MinLevel Level
	// Skew is the clock skew allowed on exp, nbf and iat; 0 means DefaultSkew.
	Skew time.Duration
	// MaxAge bounds how old iat may be (ECT-V9); 0 means DefaultMaxAge.
	MaxAge time.Duration
	// MaxPred bounds len(pred) (ECT-C8); 0 means DefaultMaxPred. There is no
	// "unlimited".
	MaxPred int
	// MaxLength bounds the token size in bytes (ECT-V1); 0 means
	// DefaultMaxLength.
	MaxLength int
	// NoLegacy refuses the names of draft -00 (typ wimse-exec+jwt, par, ext),
	// which are accepted by default.
	NoLegacy bool
	// SignatureCache, when positive, remembers up to that many signatures
	// that verified (keyed by the exact signing input, signature, algorithm
	// and key), so that verifying the same token again skips the signature
	// check; every other check runs each time. 0: none.
	SignatureCache int
	// KeyCache holds the per-key precomputation of the signature checks;
	// verifiers of the same keys may share one. nil: the verifier's own.
	KeyCache *trust.KeyCache
	// Replay is the replay cache (ECT-V12). nil gives the verifier its own
	// cache of DefaultReplayCapacity entries; share one cache between
	// verifiers that must not accept the same token twice.
	Replay *replay.Cache
	// DAG, when set, validates each verified token's place in its workflow
	// (ECT-V13).
	DAG dag.Validator
	// Receipts, when set, raises a signed token to L3 when it holds a ledger
	// receipt for exactly these bytes (ECT-L3): a ledger, or receipts
	// checked offline (ledger.ReceiptBook).
	Receipts ReceiptHolder
}

// ReceiptHolder tells whether a ledger receipt exists for a token.
type ReceiptHolder interface {
	// HoldsReceipt reports whether a receipt whose leaf is exactly token's
	// bytes is held. An error is a failure of the holder, not a verdict.
	HoldsReceipt(ctx context.Context, token string) (bool, error)
}

// Verifier verifies ECTs. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	opener envelope.Opener
	// evidence skips the audience, time and level checks (InlineStore).
	evidence bool
}

// ErrConfig is wrapped by every configuration error of NewVerifier.
var ErrConfig = errors.New("ect: invalid verifier configuration")

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	switch {
	case cfg.Trust == nil:
		return nil, fmt.Errorf("%w: Trust is required (the keys that may sign ECTs)", ErrConfig)
	case cfg.Audience == "":
		return nil, fmt.Errorf("%w: Audience is required (this verifier's own identity, checked against aud)", ErrConfig)
	case cfg.Clock == nil:
		return nil, fmt.Errorf("%w: Clock is required (for example time.Now)", ErrConfig)
	case cfg.MinLevel < 0 || cfg.MinLevel > L3:
		return nil, fmt.Errorf("%w: MinLevel %d is not a level (1, 2 or 3)", ErrConfig, cfg.MinLevel)
	case cfg.Skew < 0 || cfg.MaxAge < 0 || cfg.MaxPred < 0 || cfg.MaxLength < 0:
		return nil, fmt.Errorf("%w: Skew, MaxAge, MaxPred and MaxLength must not be negative", ErrConfig)
	}
	if cfg.MinLevel == 0 {
		cfg.MinLevel = L2
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
	legacyTyp := LegacyTyp
	if cfg.NoLegacy {
		legacyTyp = ""
	}
	keys := cfg.KeyCache
	if keys == nil {
		keys = jws.NewKeyCache()
	}
	return &Verifier{cfg: cfg, opener: envelope.Opener{MaxLength: cfg.MaxLength, Typ: Typ, AltTyp: legacyTyp, Trust: cfg.Trust, Sigs: envelope.NewSigCache(cfg.SignatureCache), Keys: keys}}, nil
}

// Verify runs the real-time verification procedure ECT-V1..ECT-V13 on token,
// in the order of spec/ect.md, and returns the verified token or the first
// failure as an *agentctx.Error.
func (v *Verifier) Verify(ctx context.Context, token string) (*Result, error) {
	return v.verify(ctx, token, v.cfg.Clock(), false)
}

// VerifyAudit verifies a token taken from a ledger: the same checks, with the
// time checks evaluated at receivedAt (the ledger's receipt time) instead of
// now, and without the replay check, which the ledger's uniqueness rule
// covers (spec/ect.md "Audit verification").
func (v *Verifier) VerifyAudit(ctx context.Context, token string, receivedAt time.Time) (*Result, error) {
	return v.verify(ctx, token, receivedAt, true)
}

func claimErr(code agentctx.Code, rule, claim, format string, args ...any) error {
	return agentctx.Errorf(code, rule, claim, format, args...)
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time, audit bool) (*Result, error) {
	res, err := v.verifyStateless(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if audit {
		// Audit verification: no replay check (the ledger's uniqueness rule
		// covers it), DAG rules still apply.
		if err := v.checkDAG(ctx, res); err != nil {
			return nil, err
		}
		return res, nil
	}
	if err := v.stateful(ctx, res, now); err != nil {
		return nil, err
	}
	return res, nil
}

// stateful applies the checks that depend on what was seen before: replay
// (ECT-V12) and the DAG (ECT-V13). The token is recorded in the replay
// cache only once every other check passed, so a token refused for a
// missing predecessor can be presented again once it arrived.
func (v *Verifier) stateful(ctx context.Context, res *Result, now time.Time) error {
	c := res.Claims
	if v.cfg.Replay.Seen(c.WorkflowID, c.ID, now) {
		return replay.Err(c.ID)
	}
	if err := v.checkDAG(ctx, res); err != nil {
		return err
	}
	return v.cfg.Replay.Add(c.WorkflowID, c.ID, v.replayUntil(c), now)
}

// replayUntil is the end of a token's replay window (ECT-V12): after
// min(exp, iat + max age) + skew it fails ECT-V8 or ECT-V9 anyway, so a
// far-future exp cannot pin a cache slot.
func (v *Verifier) replayUntil(c *Claims) time.Time {
	end := c.IssuedAt.Add(v.cfg.MaxAge)
	if c.Expiry.Before(end) {
		end = c.Expiry
	}
	return end.Add(v.cfg.Skew) // SPEC: ECT-V12 window
}

// checkDAG applies ECT-V13 and notes, in partial mode, what is missing.
func (v *Verifier) checkDAG(ctx context.Context, res *Result) error {
	if v.cfg.DAG == nil {
		return nil
	}
	verdict, err := v.cfg.DAG.Check(ctx, res.Claims.node())
	if err != nil {
		return err
	}
	if len(verdict.Missing) > 0 {
		res.Partial, res.Missing = true, verdict.Missing
	}
	return nil
}

// rules are the rule IDs ECT reports for the shared claims.
var rules = claims.Rules{
	claims.Iss: "ECT-C1", claims.Aud: "ECT-C2", claims.Iat: "ECT-C3", claims.Exp: "ECT-C4",
	claims.Nbf: "ECT-C12", claims.Jti: "ECT-C5", claims.Wid: "ECT-C6", claims.ExecAct: "ECT-C7",
	claims.Pred: "ECT-C8", claims.InpHash: "ECT-C9", claims.OutHash: "ECT-C10",
}

// signer: an ECT is signed by its issuer (ECT-V5).
var signer = claims.SignerFrom("iss", "ECT-C1")

// verifyStateless applies ECT-V1..ECT-V11 and the level policy.
func (v *Verifier) verifyStateless(ctx context.Context, token string, now time.Time) (*Result, error) {
	cfg := &v.cfg
	// ECT-V1
	if len(token) > cfg.MaxLength {
		return nil, claimErr(agentctx.CodeTooLarge, "ECT-V1", "", "token is %d bytes, the limit is %d", len(token), cfg.MaxLength)
	}
	res := &Result{}
	var members []jsonx.Member
	if strings.Count(token, ".") != 2 {
		// SPEC: ECT-L1 a value that is not three segments is tried as L1.
		payload, err := jws.DecodeSegment(token)
		if err != nil || len(token) == 0 {
			return nil, claimErr(agentctx.CodeMalformed, "ECT-V2", "", "token is neither a JWS compact serialization nor an unsigned (L1) payload")
		}
		ms, err := jsonx.ParseObject(payload)
		if err != nil {
			return nil, claimErr(agentctx.CodeMalformed, "ECT-V2", "", "unsigned (L1) payload: %v", err)
		}
		// SPEC: ECT-L2 minimum level policy (downgrade protection).
		if cfg.MinLevel > L1 {
			return nil, claimErr(agentctx.CodeLevelTooLow, "ECT-L2", "", "unsigned (L1) token, the minimum level is L%d", cfg.MinLevel)
		}
		res.Level, res.Payload, members = L1, payload, ms
	} else {
		// ECT-V1..ECT-V6
		t, err := v.opener.Open(ctx, token, signer)
		if err != nil {
			return nil, err
		}
		res.Level, res.Alg, res.KeyID, res.Header, res.Payload = L2, t.Header.Alg, t.Header.Kid, t.Header.Raw, t.Payload
		members = t.Members
	}
	// ECT-V7
	set, err := parseClaims(members, !cfg.NoLegacy)
	if err != nil {
		return nil, err
	}
	if !v.evidence {
		// ECT-V8, ECT-V9
		if err := set.CheckTimes(now, cfg.Skew, cfg.MaxAge); err != nil {
			return nil, err
		}
		// ECT-V10
		if err := set.CheckAudience(cfg.Audience); err != nil {
			return nil, err
		}
	}
	// ECT-V11
	c, err := formatClaims(set, cfg.MaxPred, !cfg.NoLegacy)
	if err != nil {
		return nil, err
	}
	res.Claims = c
	// SPEC: ECT-L3 a token is L3 only when a ledger receipt for its exact bytes is held.
	if res.Level == L2 && cfg.Receipts != nil {
		held, err := cfg.Receipts.HoldsReceipt(ctx, token)
		if err != nil {
			return nil, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "ECT-L3", Message: "receipt look-up failed", Err: err}
		}
		if held {
			res.Level = L3
		}
	}
	if cfg.MinLevel > res.Level && !v.evidence {
		return nil, claimErr(agentctx.CodeLevelTooLow, "ECT-L3", "", "token is L%d, the minimum level is L%d (a ledger receipt is needed)", res.Level, cfg.MinLevel)
	}
	return res, nil
}

// parseClaims applies ECT-V7: required claims present, JSON types right,
// exp after iat.
func parseClaims(members []jsonx.Member, legacy bool) (*claims.Set, error) {
	set, err := claims.Parse(members, legacy, rules)
	if err != nil {
		return nil, err
	}
	for _, m := range set.Rest {
		if m.Name == "ect_ext" && m.Kind != jsonx.Object {
			return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ect_ext", "ect_ext must be a JSON object")
		}
	}
	if err := set.Require(rules, claims.Iss, claims.Aud, claims.Iat, claims.Exp, claims.Jti, claims.ExecAct, claims.Pred); err != nil {
		return nil, err
	}
	if err := set.CheckExpAfterIat(rules); err != nil {
		return nil, err
	}
	return set, nil
}

// readExt sets c.Ext from ect_ext (or legacy ext) and applies ECT-C11 and
// ECT-C14 (ECT-V11).
func readExt(c *Claims, rest []jsonx.Member, legacy bool) error {
	var ext, old *jsonx.Member
	for i := range rest {
		switch rest[i].Name {
		case "ect_ext":
			ext = &rest[i]
		case "ext":
			old = &rest[i]
		}
	}
	// SPEC: ECT-C11 ext is accepted when ect_ext is absent [legacy, -00]:
	// with ect_ext present, ext is an unknown claim, wherever it stands.
	if ext == nil && old != nil && legacy {
		if old.Kind != jsonx.Object {
			return claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ext", "ext must be a JSON object")
		}
		ext = old
	}
	if ext == nil {
		return nil
	}
	c.Ext = ext.Value
	return checkExt(c)
}

// The values of ect_ext.pol_decision (ECT-C14).
var polDecisions = []string{"approved", "rejected", "pending_human_review"}

// checkExt applies the ect_ext limits of ECT-C11 and the policy keys of
// ECT-C14.
func checkExt(c *Claims) error {
	if len(c.Ext) > MaxExtSize {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ect_ext", "ect_ext is %d bytes, the limit is %d", len(c.Ext), MaxExtSize)
	}
	_, depth, err := jsonx.Validate(c.Ext)
	if err != nil || depth > MaxExtDepth {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ect_ext", "ect_ext nests %d levels, the limit is %d", depth, MaxExtDepth)
	}
	members, err := jsonx.ParseObject(c.Ext)
	if err != nil {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ect_ext", "ect_ext: %v", err)
	}
	var hasPol, hasDecision bool
	for _, m := range members {
		var ok bool
		switch m.Name {
		case "pol":
			hasPol = true
			_, ok = wire.String(m)
		case "pol_decision":
			hasDecision = true
			c.PolicyDecision, ok = wire.String(m)
			ok = ok && slices.Contains(polDecisions, c.PolicyDecision)
		case "pol_enforcer":
			var s string
			s, ok = wire.String(m)
			ok = ok && s != ""
		case "pol_timestamp":
			_, ok = wire.NumericDate(m)
		default:
			continue
		}
		if !ok {
			return claimErr(agentctx.CodeInvalidClaim, "ECT-C14", "ect_ext."+m.Name, "invalid value for ect_ext.%s", m.Name)
		}
	}
	if hasPol != hasDecision {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C14", "ect_ext.pol", "pol and pol_decision must appear together")
	}
	return nil
}

// VerifyBatch verifies tokens using up to workers goroutines (0 means
// GOMAXPROCS) and returns one result or error per token, in input order.
// Parsing and signatures run in parallel; the replay check and the DAG check
// run afterwards in input order, so that of two identical tokens the later
// one is the replay, whatever the scheduling.
func (v *Verifier) VerifyBatch(ctx context.Context, tokens []string, workers int) ([]*Result, []error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]*Result, len(tokens))
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
				results[i], errs[i] = v.verifyStateless(ctx, tokens[i], v.cfg.Clock())
			}
		}()
	}
	wg.Wait()
	now := v.cfg.Clock()
	for i, res := range results {
		if errs[i] != nil {
			results[i] = nil
			continue
		}
		if err := v.stateful(ctx, res, now); err != nil {
			results[i], errs[i] = nil, err
		}
	}
	return results, errs
}

// formatClaims applies the format rules of ECT-V11 and returns the claims.
func formatClaims(set *claims.Set, maxPred int, legacy bool) (*Claims, error) {
	if err := set.CheckFormats(rules, maxPred); err != nil {
		return nil, err
	}
	if !wire.IsActionString(set.ExecAct) {
		return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C7", "exec_act", "exec_act must be 1..256 bytes without control characters")
	}
	c := &Claims{
		Issuer: set.Iss, Audience: set.Aud, IssuedAt: set.Iat, Expiry: set.Exp, NotBefore: set.Nbf,
		ID: set.Jti, WorkflowID: set.Wid, ExecAct: set.ExecAct, Pred: set.Pred,
		InputHash: set.InpHash, OutputHash: set.OutHash,
	}
	return c, readExt(c, set.Rest, legacy)
}

// checkPayload applies the claim rules of verification (ECT-V7, ECT-V11) to
// a payload about to be signed (ECT-K1).
func checkPayload(members []jsonx.Member) error {
	set, err := parseClaims(members, false)
	if err != nil {
		return err
	}
	_, err = formatClaims(set, DefaultMaxPred, false)
	return err
}

// node reduces c to its place in the task graph.
func (c *Claims) node() dag.Node {
	return dag.Node{Kind: dag.KindECT, JTI: c.ID, WID: c.WorkflowID, Pred: c.Pred, Time: c.IssuedAt,
		Issuer: c.Issuer, ExecAct: c.ExecAct, PolicyDecision: c.PolicyDecision}
}

// Node returns the verified token's node in its workflow's task graph.
func (r *Result) Node() dag.Node { return r.Claims.node() }

// InlineStore verifies predecessor ECTs received with a token (the further
// values of an Execution-Context field, TR-1) and returns them as the DAG
// store to check the token against when no ledger is shared (spec/dag.md).
// A predecessor must pass the envelope, signature, claim and format checks;
// its audience (the agent it was sent to), its age and its replay status
// are not checked: it is evidence of an earlier step, not a request
// [decision D-41]. A predecessor that fails is an error naming its position.
func (v *Verifier) InlineStore(ctx context.Context, preds []string) (*dag.MemStore, error) {
	store := dag.NewMemStore()
	for i, tok := range preds {
		res, err := v.verifyEvidence(ctx, tok)
		if err != nil {
			return nil, fmt.Errorf("predecessor %d: %w", i+1, err)
		}
		store.Add(res.Node())
	}
	return store, nil
}

// verifyEvidence verifies tok without the audience, time and level policy
// checks (see InlineStore).
func (v *Verifier) verifyEvidence(ctx context.Context, tok string) (*Result, error) {
	ev := &Verifier{cfg: v.cfg, opener: v.opener, evidence: true}
	return ev.verifyStateless(ctx, tok, time.Time{})
}
