// Package claims reads and checks the claims that ECT and ACT share (iss, sub,
// aud, iat, exp, nbf, jti, wid, exec_act, pred, inp_hash, out_hash), with the
// same JSON shapes and meaning in both families. Each family names the rule
// IDs it reports through a Rules table.
package claims

import (
	"slices"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/wire"
)

// Claim is one shared claim, as a bit of Set.Has.
type Claim uint16

// The shared claims.
const (
	Iss Claim = 1 << iota
	Sub
	Aud
	Iat
	Exp
	Nbf
	Jti
	Wid
	ExecAct
	Pred
	InpHash
	OutHash
)

var names = map[Claim]string{
	Iss: "iss", Sub: "sub", Aud: "aud", Iat: "iat", Exp: "exp", Nbf: "nbf", Jti: "jti", Wid: "wid",
	ExecAct: "exec_act", Pred: "pred", InpHash: "inp_hash", OutHash: "out_hash",
}

// Name returns the wire name of c.
func (c Claim) Name() string { return names[c] }

// Rules gives the rule ID a family reports for each shared claim.
type Rules map[Claim]string

// Set holds the shared claims of one token after the type checks of ECT-V7.
type Set struct {
	Has              Claim // the shared claims present
	Iss, Sub         string
	Aud              []string
	Iat, Exp, Nbf    time.Time
	Jti, Wid         string
	ExecAct          string
	Pred             []string // never nil once Parse succeeded with pred present
	InpHash, OutHash string
	// Rest holds the members this package does not read, in order.
	Rest []jsonx.Member
}

func invalid(r Rules, c Claim, format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeInvalidClaim, r[c], c.Name(), format, args...)
}

// Parse type-checks the shared claims among members (ECT-V7). legacy accepts
// "par" for an absent "pred" (draft -00). Present-but-empty strings are
// invalid (an empty value is never read as absent).
func Parse(members []jsonx.Member, legacy bool, r Rules) (*Set, error) {
	s := &Set{}
	var par *jsonx.Member
	str := func(c Claim, m *jsonx.Member, dst *string) error {
		v, ok := wire.String(*m)
		if !ok || v == "" {
			return invalid(r, c, "%s must be a non-empty string", c.Name())
		}
		*dst = v
		s.Has |= c
		return nil
	}
	date := func(c Claim, m *jsonx.Member, dst *time.Time) error {
		v, ok := wire.NumericDate(*m)
		if !ok {
			return invalid(r, c, "%s must be an integer NumericDate", c.Name())
		}
		*dst = time.Unix(v, 0)
		s.Has |= c
		return nil
	}
	for i := range members {
		m := &members[i]
		var err error
		switch m.Name {
		case "iss":
			err = str(Iss, m, &s.Iss)
		case "sub":
			err = str(Sub, m, &s.Sub)
		case "jti":
			err = str(Jti, m, &s.Jti)
		case "wid":
			err = str(Wid, m, &s.Wid)
		case "exec_act":
			err = str(ExecAct, m, &s.ExecAct)
		case "inp_hash":
			err = str(InpHash, m, &s.InpHash)
		case "out_hash":
			err = str(OutHash, m, &s.OutHash)
		case "iat":
			err = date(Iat, m, &s.Iat)
		case "exp":
			err = date(Exp, m, &s.Exp)
		case "nbf":
			err = date(Nbf, m, &s.Nbf)
		case "aud":
			aud, ok := wire.Audience(*m)
			if !ok || len(aud) == 0 || slices.Contains(aud, "") {
				return nil, invalid(r, Aud, "aud must be a non-empty string or a non-empty array of non-empty strings")
			}
			s.Aud, s.Has = aud, s.Has|Aud
		case "pred":
			if s.Pred, err = stringArray(m, r); err == nil {
				s.Has |= Pred
			}
		case "par":
			par = m
		default:
			if s.Rest == nil {
				s.Rest = make([]jsonx.Member, 0, len(members)-i)
			}
			s.Rest = append(s.Rest, *m)
		}
		if err != nil {
			return nil, err
		}
	}
	if s.Has&Pred == 0 && par != nil {
		if !legacy {
			s.Rest = append(s.Rest, *par)
		} else {
			// SPEC: ECT-C8, ACT-R2 par is accepted when pred is absent [legacy, -00].
			var err error
			if s.Pred, err = stringArray(par, r); err != nil {
				return nil, err
			}
			s.Has |= Pred
		}
	}
	return s, nil
}

func stringArray(m *jsonx.Member, r Rules) ([]string, error) {
	if m.Kind == jsonx.Array {
		if v, ok := jsonx.DecodeStrings(m.Value); ok {
			return v, nil
		}
	}
	return nil, agentctx.Errorf(agentctx.CodeInvalidClaim, r[Pred], m.Name, "%s must be an array of strings", m.Name)
}

// Require reports the first of want that is absent, as missing_claim.
func (s *Set) Require(r Rules, want ...Claim) error {
	for _, c := range want {
		if s.Has&c == 0 {
			return agentctx.Errorf(agentctx.CodeMissingClaim, r[c], c.Name(), "required claim is missing")
		}
	}
	return nil
}

// CheckExpAfterIat applies "exp > iat" (ECT-C4, ACT-M4).
func (s *Set) CheckExpAfterIat(r Rules) error {
	if !s.Exp.After(s.Iat) {
		return invalid(r, Exp, "exp must be after iat")
	}
	return nil
}

// CheckTimes applies ECT-V8 and ECT-V9 as of now: exp (with skew), nbf,
// iat not in the future, and iat not older than maxAge (0: no limit).
func (s *Set) CheckTimes(now time.Time, skew, maxAge time.Duration) error {
	if !s.Exp.Add(skew).After(now) {
		return agentctx.Errorf(agentctx.CodeExpired, "ECT-V8", "exp", "token expired %s ago", wire.Duration(now.Sub(s.Exp)))
	}
	if s.Has&Nbf != 0 && s.Nbf.After(now.Add(skew)) {
		return agentctx.Errorf(agentctx.CodeNotYetValid, "ECT-V8", "nbf", "token is not valid for another %s", wire.Duration(s.Nbf.Sub(now)))
	}
	if s.Iat.After(now.Add(skew)) {
		return agentctx.Errorf(agentctx.CodeIATInFuture, "ECT-V9", "iat", "token issued %s in the future", wire.Duration(s.Iat.Sub(now)))
	}
	if maxAge > 0 && s.Iat.Before(now.Add(-maxAge)) {
		return agentctx.Errorf(agentctx.CodeTooOld, "ECT-V9", "iat", "token issued %s ago, the limit is %s", wire.Duration(now.Sub(s.Iat)), wire.Duration(maxAge))
	}
	return nil
}

// CheckAudience applies ECT-V10: want is among aud.
func (s *Set) CheckAudience(want string) error {
	if !slices.Contains(s.Aud, want) {
		return agentctx.Errorf(agentctx.CodeAudienceMismatch, "ECT-V10", "aud", "audience does not include %q", want)
	}
	return nil
}

// CheckFormats applies the shared format rules of ECT-V11: jti and wid are
// UUIDs; pred holds at most maxPred UUIDs, no duplicates, not the token's own
// jti; hashes are hash values. exec_act is the family's own to check.
func (s *Set) CheckFormats(r Rules, maxPred int) error {
	if !wire.IsUUID(s.Jti) {
		return invalid(r, Jti, "jti %q is not a UUID", s.Jti)
	}
	if s.Has&Wid != 0 && !wire.IsUUID(s.Wid) {
		return invalid(r, Wid, "wid %q is not a UUID", s.Wid)
	}
	// SPEC: ECT-C8, DAG-7 fan-in limit.
	if len(s.Pred) > maxPred {
		return invalid(r, Pred, "pred has %d entries, the limit is %d", len(s.Pred), maxPred)
	}
	for i, p := range s.Pred {
		if !wire.IsUUID(p) {
			return invalid(r, Pred, "pred entry %q is not a UUID", p)
		}
		if strings.EqualFold(p, s.Jti) {
			return invalid(r, Pred, "pred names the token's own jti")
		}
		for _, q := range s.Pred[:i] {
			if strings.EqualFold(p, q) {
				return invalid(r, Pred, "pred lists %q twice", p)
			}
		}
	}
	if s.Has&InpHash != 0 && !wire.IsHash(s.InpHash) {
		return invalid(r, InpHash, "inp_hash is not a base64url SHA-256 hash value (43 characters)")
	}
	if s.Has&OutHash != 0 && !wire.IsHash(s.OutHash) {
		return invalid(r, OutHash, "out_hash is not a base64url SHA-256 hash value (43 characters)")
	}
	return nil
}

// SignerFrom returns an envelope signer reading the string claim name (iss
// for ECTs and mandates, sub for ACT records), reported under rule.
func SignerFrom(name, rule string) func([]jsonx.Member) (string, error) {
	return func(members []jsonx.Member) (string, error) {
		for _, m := range members {
			if m.Name == name {
				s, ok := wire.String(m)
				if !ok || s == "" {
					return "", agentctx.Errorf(agentctx.CodeInvalidClaim, rule, name, "%s must be a non-empty string", name)
				}
				return s, nil
			}
		}
		return "", agentctx.Errorf(agentctx.CodeMissingClaim, rule, name, "required claim is missing")
	}
}
