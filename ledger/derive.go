package ledger

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/dag"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/trust"
)

// candidate is a token a support look-up may use: a stored entry, or a
// token of the batch being appended (not stored yet).
type candidate struct {
	kind, jti, wid string
	token          string
	stored         bool
}

// finder returns the candidates whose jti is jti (lower case). Append looks
// in the store and the batch; the audit looks only at the entries before the
// one it checks, so every token is re-verified from what the ledger held
// when it was appended (ACT-P3b, LED-9).
type finder func(ctx context.Context, jti string) ([]candidate, error)

// storeFinder finds stored entries below bound (all of them when bound is
// nil).
func storeFinder(st Store, below func() uint64) finder {
	return func(ctx context.Context, jti string) ([]candidate, error) {
		es, err := st.ByJTI(ctx, jti)
		if err != nil {
			return nil, internal("reading the ledger", err)
		}
		out := make([]candidate, 0, len(es))
		for i := range es {
			if below != nil && es[i].Index >= below() {
				continue
			}
			out = append(out, candidate{kind: es[i].Kind, jti: es[i].JTI, wid: es[i].WID, token: string(es[i].Token), stored: true})
		}
		return out, nil
	}
}

// internal wraps a storage failure: an error of the ledger, never a verdict
// on a token.
func internal(what string, err error) error {
	return &agentctx.Error{Code: agentctx.CodeInternal, Message: what + ": " + err.Error(), Err: err}
}

// derived is what the ledger derives from one token's bytes (LED-2): the
// index columns of its entry, the supporting tokens that must be stored
// before it, and what is missing in partial mode.
type derived struct {
	entry *Entry
	// needs are supporting tokens (delegation parents, a record's mandate)
	// that are not stored yet, in the order they must be appended.
	needs []string
	// missing names the record's mandate when neither stored nor supplied
	// (partial mode, ACT-P3b).
	missing []string
}

// entryOf derives every index column of an entry from the verified node of
// its token (LED-2): the one function append and audit share. Index,
// receipt time, hashes and the partial flag come from the placement.
func entryOf(n dag.Node, token string) *Entry {
	e := &Entry{Kind: n.Kind, JTI: strings.ToLower(n.JTI), WID: strings.ToLower(n.WID), Issuer: n.Issuer, Subject: n.Subject,
		ExecAct: n.ExecAct, Pred: make([]string, len(n.Pred)), Time: n.Time, Status: n.Status, Policy: n.PolicyDecision,
		Caps: n.Caps, Token: []byte(token)}
	for i, p := range n.Pred {
		e.Pred[i] = strings.ToLower(p)
	}
	if e.Caps == nil {
		e.Caps = []string{}
	}
	return e
}

// derive runs the full verification of one token as of at (LED-1) and
// returns its entry columns. supplied are the caller's supporting tokens;
// find looks up the tokens the ledger already holds (or will hold before
// this one). partial allows a record whose mandate is unknown (ACT-P3b).
func (l *Ledger) derive(ctx context.Context, token string, supplied []string, at time.Time, find finder, partial bool) (*derived, error) {
	kind, err := kindOf(token)
	if err != nil {
		return nil, err
	}
	if kind == KindECT {
		return l.deriveECT(ctx, token, at)
	}
	d := &derived{}
	var sup []string
	if shape, perr := act.ParseUnverified(token); perr == nil {
		if shape.Phase == act.PhaseMandate {
			sup, d.needs, err = parents(ctx, shape.Mandate, supplied, find)
		} else {
			sup, d.needs, d.missing, err = recordSupport(ctx, shape.Record, supplied, find, partial)
		}
		if err != nil {
			return nil, err
		}
	}
	// A token that does not parse is refused by the verifier with its code.
	res, err := l.act.VerifyAudit(ctx, token, sup, at)
	if err != nil {
		return nil, err
	}
	d.entry = entryOf(res.Node(), token)
	return d, nil
}

// deriveECT is derive for an ECT, which needs nothing but the token.
func (l *Ledger) deriveECT(ctx context.Context, token string, at time.Time) (*derived, error) {
	// SPEC: LED-1 an ECT must name the ledger's identity in aud (ECT-V10).
	res, err := l.ect.VerifyAudit(ctx, token, at)
	if err != nil {
		return nil, err
	}
	return &derived{entry: entryOf(res.Node(), token)}, nil
}

// recordSupport returns the supporting tokens of a record, as the ledger
// sees them (ACT-P3b): the stored mandate of the record's (wid, jti) when
// there is one, whatever the caller supplies; else the supplied mandate,
// which is then stored before the record; and the mandate's parents.
func recordSupport(ctx context.Context, rec *act.Record, supplied []string, find finder, partial bool) (sup, needs, missing []string, err error) {
	cs, err := find(ctx, strings.ToLower(rec.ID))
	if err != nil {
		return nil, nil, nil, err
	}
	var held *candidate
	for i := range cs {
		if cs[i].kind == KindACTMandate && cs[i].wid == strings.ToLower(rec.WorkflowID) {
			held = &cs[i]
		}
	}
	var mtok string
	switch {
	case held != nil:
		mtok = held.token
		// SPEC: ACT-P3b the stored mandate is the one compared.
		if len(supplied) > 0 && strings.TrimSpace(supplied[0]) != mtok {
			return nil, nil, nil, agentctx.Errorf(agentctx.CodeMandateMismatch, "ACT-P3b", "jti",
				"the ledger holds another mandate for task %q; a record is compared with the stored one", rec.ID)
		}
		if !held.stored {
			needs = []string{mtok}
		}
	case len(supplied) > 0:
		mtok = strings.TrimSpace(supplied[0])
		needs = []string{mtok}
	case partial:
		return nil, nil, []string{rec.ID}, nil
	default:
		return nil, nil, nil, agentctx.Errorf(agentctx.CodeMandateUnknown, "ACT-P3b", "jti",
			"the mandate of task %q is neither in the ledger nor supplied; append it first or with the record", rec.ID)
	}
	sup = []string{mtok}
	m, perr := act.ParseUnverified(mtok)
	if perr != nil || m.Phase != act.PhaseMandate {
		return sup, needs, nil, nil // the verifier refuses the mandate with its code
	}
	var rest []string
	if len(supplied) > 0 {
		rest = supplied[1:]
	}
	ps, pneeds, err := parents(ctx, m.Mandate, rest, find)
	if err != nil {
		return nil, nil, nil, err
	}
	return append(sup, ps...), append(pneeds, needs...), nil, nil
}

// parents returns the parent mandates of a delegated mandate, nearest
// first, each found in the ledger by its chain link (jti and token hash) or
// else among the supplied tokens; and those not stored yet, farthest first
// (the order to append them in). A parent found nowhere ends the list: the
// verifier refuses the chain (delegation_broken).
func parents(ctx context.Context, m *act.Mandate, supplied []string, find finder) (ps, needs []string, err error) {
	d := m.Delegation
	if d == nil {
		return nil, nil, nil
	}
	for i := len(d.Chain) - 1; i >= 0; i-- {
		link := d.Chain[i]
		tok, stored := "", false
		cs, err := find(ctx, strings.ToLower(link.ID))
		if err != nil {
			return nil, nil, err
		}
		for _, c := range cs {
			if c.kind == KindACTMandate && wire.HashString(c.token) == link.Hash {
				tok, stored = c.token, c.stored
			}
		}
		if tok == "" {
			for _, s := range supplied {
				if s = strings.TrimSpace(s); wire.HashString(s) == link.Hash {
					tok = s
				}
			}
		}
		if tok == "" {
			break
		}
		ps = append(ps, tok)
		if !stored {
			needs = append([]string{tok}, needs...)
		}
	}
	return ps, needs, nil
}

// unverifiedNode reads a token's node without verifying it: what the audit
// uses to go on checking the rest of the log past a token whose key the
// trust lacks (LED-9b).
func unverifiedNode(token string) (dag.Node, error) {
	kind, err := kindOf(token)
	if err != nil {
		return dag.Node{}, err
	}
	if kind == KindECT {
		r, err := ect.ParseUnverified(token)
		if err != nil {
			return dag.Node{}, err
		}
		return r.Node(), nil
	}
	r, err := act.ParseUnverified(token)
	if err != nil {
		return dag.Node{}, err
	}
	return r.Node(), nil
}

// keyFinding returns what key the trust lacks when err failed only for that
// (the token's own key, its mandate's or a parent's: unknown_key), or nil.
func keyFinding(err error) *trust.UnknownKeyError {
	var e *agentctx.Error
	if !errors.As(err, &e) {
		return nil
	}
	var k *trust.UnknownKeyError
	if errors.As(err, &k) {
		return k
	}
	return nil
}

// differs names the first index column of stored that is not what the token
// gives (LED-2), or "".
func differs(stored, want *Entry) string {
	switch {
	case stored.Kind != want.Kind:
		return "kind"
	case stored.JTI != want.JTI:
		return "jti"
	case stored.WID != want.WID:
		return "wid"
	case stored.Issuer != want.Issuer:
		return "iss"
	case stored.Subject != want.Subject:
		return "sub"
	case stored.ExecAct != want.ExecAct:
		return "exec_act"
	case strings.Join(stored.Pred, ",") != strings.Join(want.Pred, ","):
		return "pred"
	case !stored.Time.Equal(want.Time):
		return "ts"
	case stored.Status != want.Status:
		return "status"
	case stored.Policy != want.Policy:
		return "pol"
	case strings.Join(stored.Caps, ",") != strings.Join(want.Caps, ","):
		return "caps"
	case stored.Partial != want.Partial:
		return "partial"
	}
	return ""
}
