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
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
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
	// only tokens with a ledger receipt, which this verifier cannot hold yet:
	// with L3 every token is refused with level_too_low.
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
	// Replay is the replay cache (ECT-V12). nil gives the verifier its own
	// cache of DefaultReplayCapacity entries; share one cache between
	// verifiers that must not accept the same token twice.
	Replay *ReplayCache
	// DAG, when set, validates each verified token's place in its workflow
	// (ECT-V13).
	DAG dag.Validator
}

// Verifier verifies ECTs. It is safe for concurrent use.
type Verifier struct {
	cfg Config
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
		cfg.Replay = NewReplayCache(DefaultReplayCapacity)
	}
	return &Verifier{cfg: cfg}, nil
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
		return res, v.checkDAG(ctx, res.Claims)
	}
	if err := v.stateful(ctx, res.Claims, now); err != nil {
		return nil, err
	}
	return res, nil
}

// stateful applies the checks that depend on what was seen before: replay
// (ECT-V12) and the DAG (ECT-V13).
func (v *Verifier) stateful(ctx context.Context, c *Claims, now time.Time) error {
	if err := v.cfg.Replay.Add(c.WorkflowID, c.ID, c.Expiry.Add(v.cfg.Skew), now); err != nil {
		return err
	}
	return v.checkDAG(ctx, c)
}

func (v *Verifier) checkDAG(ctx context.Context, c *Claims) error {
	if v.cfg.DAG == nil {
		return nil
	}
	n := dag.Node{Kind: dag.KindECT, JTI: c.ID, WID: c.WorkflowID, Pred: c.Pred, Time: c.IssuedAt, ExecAct: c.ExecAct, PolicyDecision: c.PolicyDecision}
	return v.cfg.DAG.Validate(ctx, n)
}

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
		t, err := jws.Parse(token, cfg.MaxLength)
		if err != nil {
			return nil, err
		}
		// ECT-V3
		if err := v.checkTyp(&t.Header); err != nil {
			return nil, err
		}
		// ECT-V4
		if err := t.CheckAlg(); err != nil {
			return nil, err
		}
		// ECT-V5
		if !t.Header.HasKid || !t.Header.KidIsString || t.Header.Kid == "" {
			return nil, claimErr(agentctx.CodeUnknownKey, "ECT-V5", "kid", "header has no kid; a key ID is required to find the key")
		}
		iss, err := issuerForKey(t.Members)
		if err != nil {
			return nil, err
		}
		pub, err := cfg.Trust.ResolveKey(ctx, iss, t.Header.Kid, t.Header.Alg)
		if err != nil {
			return nil, err
		}
		// ECT-V6
		if err := jws.Verify(t.Header.Alg, pub, t.SigningInput, t.Signature); err != nil {
			if errors.Is(err, jws.ErrKeyAlgMismatch) {
				return nil, claimErr(agentctx.CodeUnknownKey, "ECT-V5", "alg", "trusted key %q does not match alg %s", t.Header.Kid, t.Header.Alg)
			}
			return nil, err
		}
		res.Level, res.Alg, res.KeyID, res.Header, res.Payload = L2, t.Header.Alg, t.Header.Kid, t.Header.Raw, t.Payload
		members = t.Members
	}
	// ECT-V7
	c, err := parseClaims(members, !cfg.NoLegacy)
	if err != nil {
		return nil, err
	}
	res.Claims = c
	// ECT-V8, ECT-V9
	if err := checkTimes(c, now, cfg.Skew, cfg.MaxAge); err != nil {
		return nil, err
	}
	// ECT-V10
	if !slices.Contains(c.Audience, cfg.Audience) {
		return nil, claimErr(agentctx.CodeAudienceMismatch, "ECT-V10", "aud", "audience does not include %q", cfg.Audience)
	}
	// ECT-V11
	if err := checkFormats(c, cfg.MaxPred); err != nil {
		return nil, err
	}
	if cfg.MinLevel > res.Level {
		// SPEC: ECT-L3 a token is L3 only with a ledger receipt, which this verifier does not hold.
		return nil, claimErr(agentctx.CodeLevelTooLow, "ECT-L3", "", "token is L%d, the minimum level is L%d (a ledger receipt is needed)", res.Level, cfg.MinLevel)
	}
	return res, nil
}

func (v *Verifier) checkTyp(h *jws.Header) error {
	if !h.HasTyp || !h.TypIsString {
		return claimErr(agentctx.CodeInvalidTyp, "ECT-V3", "typ", "header has no typ string; an ECT has typ %q", Typ)
	}
	// SPEC: ECT-H1 exec+jwt, legacy wimse-exec+jwt; comparison per RFC 7515 §4.1.9.
	if jws.TypMatches(h.Typ, Typ) || (!v.cfg.NoLegacy && jws.TypMatches(h.Typ, LegacyTyp)) {
		return nil
	}
	return claimErr(agentctx.CodeInvalidTyp, "ECT-V3", "typ", "typ %q is not an ECT (%s)", h.Typ, Typ)
}

// issuerForKey reads iss, which the key look-up of ECT-V5 needs before the
// signature is checked. A missing or non-string iss fails as ECT-V7 would.
func issuerForKey(members []jsonx.Member) (string, error) {
	for _, m := range members {
		if m.Name == "iss" {
			s, ok := wire.String(m)
			if !ok || s == "" {
				return "", claimErr(agentctx.CodeInvalidClaim, "ECT-C1", "iss", "iss must be a non-empty string")
			}
			return s, nil
		}
	}
	return "", claimErr(agentctx.CodeMissingClaim, "ECT-C1", "iss", "required claim is missing")
}

// parseClaims applies ECT-V7: required claims present, JSON types right.
func parseClaims(members []jsonx.Member, legacy bool) (*Claims, error) {
	c := &Claims{}
	var have struct{ iss, aud, iat, exp, jti, execAct, pred bool }
	var par, ext *jsonx.Member
	var hasExt bool
	for i := range members {
		m := &members[i]
		var ok bool
		switch m.Name {
		case "iss":
			have.iss = true
			c.Issuer, ok = wire.String(*m)
			if !ok || c.Issuer == "" {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C1", "iss", "iss must be a non-empty string")
			}
		case "aud":
			have.aud = true
			c.Audience, ok = wire.Audience(*m)
			if !ok || len(c.Audience) == 0 || slices.Contains(c.Audience, "") {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C2", "aud", "aud must be a non-empty string or a non-empty array of non-empty strings")
			}
		case "iat":
			have.iat = true
			t, ok := wire.NumericDate(*m)
			if !ok {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C3", "iat", "iat must be an integer NumericDate")
			}
			c.IssuedAt = time.Unix(t, 0)
		case "exp":
			have.exp = true
			t, ok := wire.NumericDate(*m)
			if !ok {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C4", "exp", "exp must be an integer NumericDate")
			}
			c.Expiry = time.Unix(t, 0)
		case "nbf":
			t, ok := wire.NumericDate(*m)
			if !ok {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C12", "nbf", "nbf must be an integer NumericDate")
			}
			c.NotBefore = time.Unix(t, 0)
		case "jti":
			have.jti = true
			if c.ID, ok = wire.String(*m); !ok {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C5", "jti", "jti must be a string")
			}
		case "wid":
			if c.WorkflowID, ok = wire.String(*m); !ok || c.WorkflowID == "" {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C6", "wid", "wid must be a UUID string")
			}
		case "exec_act":
			have.execAct = true
			if c.ExecAct, ok = wire.String(*m); !ok {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C7", "exec_act", "exec_act must be a string")
			}
		case "pred":
			have.pred = true
			if m.Kind != jsonx.Array {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "pred", "pred must be an array of strings")
			}
			if c.Pred, ok = jsonx.DecodeStrings(m.Value); !ok {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "pred", "pred must be an array of strings")
			}
		case "par":
			par = m
		case "inp_hash":
			if c.InputHash, ok = wire.String(*m); !ok || c.InputHash == "" {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C9", "inp_hash", "inp_hash must be a hash value string")
			}
		case "out_hash":
			if c.OutputHash, ok = wire.String(*m); !ok || c.OutputHash == "" {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C10", "out_hash", "out_hash must be a hash value string")
			}
		case "ect_ext":
			hasExt = true
			if m.Kind != jsonx.Object {
				return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ect_ext", "ect_ext must be a JSON object")
			}
			c.Ext = m.Value
		case "ext":
			ext = m
		}
	}
	if !have.pred && legacy && par != nil {
		// SPEC: ECT-C8 par is accepted when pred is absent [legacy, -00].
		have.pred = true
		var ok bool
		if par.Kind != jsonx.Array {
			return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "par", "par must be an array of strings")
		}
		if c.Pred, ok = jsonx.DecodeStrings(par.Value); !ok {
			return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "par", "par must be an array of strings")
		}
	}
	if !hasExt && legacy && ext != nil {
		// SPEC: ECT-C11 ext is accepted when ect_ext is absent [legacy, -00].
		if ext.Kind != jsonx.Object {
			return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ext", "ext must be a JSON object")
		}
		c.Ext = ext.Value
	}
	for _, r := range [...]struct {
		ok          bool
		claim, rule string
	}{
		{have.iss, "iss", "ECT-C1"}, {have.aud, "aud", "ECT-C2"}, {have.iat, "iat", "ECT-C3"},
		{have.exp, "exp", "ECT-C4"}, {have.jti, "jti", "ECT-C5"}, {have.execAct, "exec_act", "ECT-C7"},
		{have.pred, "pred", "ECT-C8"},
	} {
		if !r.ok {
			return nil, claimErr(agentctx.CodeMissingClaim, r.rule, r.claim, "required claim is missing")
		}
	}
	// SPEC: ECT-C4 exp > iat.
	if !c.Expiry.After(c.IssuedAt) {
		return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C4", "exp", "exp must be after iat")
	}
	if c.Pred == nil {
		c.Pred = []string{}
	}
	return c, nil
}

// checkTimes applies ECT-V8 and ECT-V9 as of now.
func checkTimes(c *Claims, now time.Time, skew, maxAge time.Duration) error {
	if !c.Expiry.Add(skew).After(now) {
		return claimErr(agentctx.CodeExpired, "ECT-V8", "exp", "token expired %s ago", now.Sub(c.Expiry).Round(time.Second))
	}
	if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(skew)) {
		return claimErr(agentctx.CodeNotYetValid, "ECT-V8", "nbf", "token is not valid for another %s", c.NotBefore.Sub(now).Round(time.Second))
	}
	if c.IssuedAt.After(now.Add(skew)) {
		return claimErr(agentctx.CodeIATInFuture, "ECT-V9", "iat", "token issued %s in the future", c.IssuedAt.Sub(now).Round(time.Second))
	}
	if c.IssuedAt.Before(now.Add(-maxAge)) {
		return claimErr(agentctx.CodeTooOld, "ECT-V9", "iat", "token issued %s ago, the limit is %s", now.Sub(c.IssuedAt).Round(time.Second), maxAge)
	}
	return nil
}

// The values of ect_ext.pol_decision (ECT-C14).
var polDecisions = []string{"approved", "rejected", "pending_human_review"}

// checkFormats applies ECT-V11.
func checkFormats(c *Claims, maxPred int) error {
	if !wire.IsUUID(c.ID) {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C5", "jti", "jti %q is not a UUID", c.ID)
	}
	if c.WorkflowID != "" && !wire.IsUUID(c.WorkflowID) {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C6", "wid", "wid %q is not a UUID", c.WorkflowID)
	}
	if !wire.IsActionString(c.ExecAct) {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C7", "exec_act", "exec_act must be 1..256 bytes without control characters")
	}
	// SPEC: ECT-C8, DAG-7 fan-in limit.
	if len(c.Pred) > maxPred {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "pred", "pred has %d entries, the limit is %d", len(c.Pred), maxPred)
	}
	for i, p := range c.Pred {
		if !wire.IsUUID(p) {
			return claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "pred", "pred entry %q is not a UUID", p)
		}
		if strings.EqualFold(p, c.ID) {
			return claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "pred", "pred names the token's own jti")
		}
		for _, q := range c.Pred[:i] {
			if strings.EqualFold(p, q) {
				return claimErr(agentctx.CodeInvalidClaim, "ECT-C8", "pred", "pred lists %q twice", p)
			}
		}
	}
	if c.InputHash != "" && !wire.IsHash(c.InputHash) {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C9", "inp_hash", "inp_hash is not a base64url SHA-256 hash value (43 characters)")
	}
	if c.OutputHash != "" && !wire.IsHash(c.OutputHash) {
		return claimErr(agentctx.CodeInvalidClaim, "ECT-C10", "out_hash", "out_hash is not a base64url SHA-256 hash value (43 characters)")
	}
	if c.Ext != nil {
		return checkExt(c)
	}
	return nil
}

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
		if err := v.stateful(ctx, res.Claims, now); err != nil {
			results[i], errs[i] = nil, err
		}
	}
	return results, errs
}
