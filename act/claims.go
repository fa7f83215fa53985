package act

import (
	"bytes"
	"slices"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/claims"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
)

// rules are the rule IDs ACT reports for the shared claims.
var rules = claims.Rules{
	claims.Iss: "ACT-M1", claims.Sub: "ACT-M2", claims.Aud: "ACT-M3", claims.Iat: "ACT-M4",
	claims.Exp: "ACT-M4", claims.Nbf: "ECT-V8", claims.Jti: "ACT-M5", claims.Wid: "ACT-M6",
	claims.ExecAct: "ACT-R1", claims.Pred: "ACT-R2", claims.InpHash: "ACT-R5", claims.OutHash: "ACT-R5",
}

// recordOnly are the claims a record adds to its mandate's.
var recordOnly = []string{"exec_act", "pred", "par", "exec_ts", "status", "inp_hash", "out_hash", "err"}

func errf(code agentctx.Code, rule, claim, format string, args ...any) error {
	return agentctx.Errorf(code, rule, claim, format, args...)
}

// detectPhase applies ACT-P1: none of exec_act, exec_ts, status is a mandate,
// all three a record, anything else a phase_error.
func detectPhase(members []jsonx.Member) (Phase, error) {
	n := 0
	for _, m := range members {
		switch m.Name {
		case "exec_act", "exec_ts", "status":
			n++
		}
	}
	switch n {
	case 0:
		return PhaseMandate, nil
	case 3:
		return PhaseRecord, nil
	}
	return phaseNone, errf(agentctx.CodePhaseError, "ACT-P1", "", "token has %d of exec_act, exec_ts and status: neither a mandate (none) nor a record (all three)", n)
}

// signerOf returns the identity whose key signs the token: sub for a record
// (ACT-P3), iss otherwise.
func signerOf(members []jsonx.Member) (string, error) {
	if p, _ := detectPhase(members); p == PhaseRecord {
		return subSigner(members)
	}
	return issSigner(members)
}

var (
	issSigner = claims.SignerFrom("iss", "ACT-M1")
	subSigner = claims.SignerFrom("sub", "ACT-M2")
)

// IsActionName reports whether s follows the action grammar of ACT-A1:
// dot-separated segments of a-z, 0-9, "_" and "-", at most 128 bytes.
func IsActionName(s string) bool {
	if len(s) == 0 || len(s) > MaxActionLength {
		return false
	}
	seg := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			seg++
		case c == '.' && seg > 0:
			seg = 0
		default:
			return false
		}
	}
	return seg > 0
}

// parsed is a token's claims after the checks of ECT-V7 and ECT-V11.
type parsed struct {
	phase   Phase
	set     *claims.Set
	mandate Mandate
	rec     Record // set for a record
	members []jsonx.Member
	token   string     // the compact JWS
	jws     *jws.Token // its envelope
}

// parseACT type-checks every claim (ECT-V7) of a token of phase p and
// returns it with the shared claims, without time or audience checks.
func parseACT(members []jsonx.Member, p Phase, legacy bool) (*parsed, error) {
	set, err := claims.Parse(members, legacy, rules)
	if err != nil {
		return nil, err
	}
	out := &parsed{phase: p, set: set}
	m := &out.mandate
	var has struct{ task, cap, execTS, status bool }
	for _, mem := range set.Rest {
		switch mem.Name {
		case "task":
			has.task = true
			if err := parseTask(mem, &m.Task); err != nil {
				return nil, err
			}
		case "cap":
			has.cap = true
			if m.Capabilities, err = parseCaps(mem); err != nil {
				return nil, err
			}
		case "del":
			if m.Delegation, err = parseDel(mem); err != nil {
				return nil, err
			}
		case "oversight":
			if m.Oversight, err = parseOversight(mem); err != nil {
				return nil, err
			}
		case "exec_ts":
			has.execTS = true
			t, ok := wire.NumericDate(mem)
			if !ok {
				return nil, errf(agentctx.CodeInvalidClaim, "ACT-R3", "exec_ts", "exec_ts must be an integer NumericDate")
			}
			out.rec.ExecTS = time.Unix(t, 0)
		case "status":
			has.status = true
			s, ok := wire.String(mem)
			if !ok || !slices.Contains([]string{StatusCompleted, StatusFailed, StatusPartial}, s) {
				return nil, errf(agentctx.CodeInvalidClaim, "ACT-R4", "status", "status must be completed, failed or partial")
			}
			out.rec.Status = s
		case "err":
			e, ok := parseExecError(mem)
			if !ok {
				return nil, errf(agentctx.CodeInvalidClaim, "ACT-R6", "err", "err must be an object with a string code and an optional string message")
			}
			out.rec.Err = e
		}
	}
	// Required claims, in rule order.
	if err := set.Require(rules, claims.Iss, claims.Sub, claims.Aud, claims.Iat, claims.Exp, claims.Jti); err != nil {
		return nil, err
	}
	if !has.task {
		return nil, errf(agentctx.CodeMissingClaim, "ACT-M7", "task", "required claim is missing")
	}
	if !has.cap {
		return nil, errf(agentctx.CodeMissingClaim, "ACT-M8", "cap", "required claim is missing")
	}
	if err := set.CheckExpAfterIat(rules); err != nil {
		return nil, err
	}
	m.Issuer, m.Subject, m.Audience, m.IssuedAt, m.Expiry = set.Iss, set.Sub, set.Aud, set.Iat, set.Exp
	m.ID, m.WorkflowID = set.Jti, set.Wid
	if p == PhaseRecord {
		if err := set.Require(rules, claims.ExecAct, claims.Pred); err != nil {
			return nil, err
		}
		r := &out.rec
		r.Mandate = *m
		r.ExecAct, r.Pred, r.InputHash, r.OutputHash = set.ExecAct, set.Pred, set.InpHash, set.OutHash
	}
	return out, nil
}

// stringMembers reports whether every listed member of the object is a
// string when present.
// parseExecError reads the err claim with the strict reader (ACT-R6): an
// object with a non-empty string code and an optional string message.
func parseExecError(mem jsonx.Member) (*ExecError, bool) {
	if mem.Kind != jsonx.Object {
		return nil, false
	}
	ms, err := jsonx.ParseObject(mem.Value)
	if err != nil {
		return nil, false
	}
	e := &ExecError{}
	for _, m := range ms {
		var ok bool
		switch m.Name {
		case "code":
			e.Code, ok = wire.String(m)
		case "message":
			e.Message, ok = wire.String(m)
		default:
			continue
		}
		if !ok {
			return nil, false
		}
	}
	return e, e.Code != ""
}

func parseTask(mem jsonx.Member, t *Task) error {
	bad := func(claim, msg string) error { return errf(agentctx.CodeInvalidClaim, "ACT-M7", claim, "%s", msg) }
	if mem.Kind != jsonx.Object {
		return bad("task", "task must be a JSON object")
	}
	ms, err := jsonx.ParseObject(mem.Value)
	if err != nil {
		return bad("task", "task is not a valid object")
	}
	hasPurpose := false
	for _, m := range ms {
		var ok bool
		switch m.Name {
		case "purpose":
			hasPurpose = true
			t.Purpose, ok = wire.String(m)
			ok = ok && t.Purpose != ""
		case "created_by":
			t.CreatedBy, ok = wire.String(m)
		case "data_sensitivity":
			t.DataSensitivity, ok = wire.String(m)
			ok = ok && slices.Contains(sensitivities, t.DataSensitivity)
		default:
			continue // other members are preserved in the payload
		}
		if !ok {
			return bad("task."+m.Name, "invalid task."+m.Name)
		}
	}
	if !hasPurpose {
		return errf(agentctx.CodeMissingClaim, "ACT-M7", "task.purpose", "task has no purpose")
	}
	return nil
}

func parseCaps(mem jsonx.Member) ([]Capability, error) {
	bad := func(format string, args ...any) error {
		return errf(agentctx.CodeInvalidClaim, "ACT-M8", "cap", format, args...)
	}
	if mem.Kind != jsonx.Array {
		return nil, bad("cap must be an array of capability objects")
	}
	objs, ok := jsonx.ObjectsInArray(mem.Value)
	if !ok {
		return nil, bad("cap must be an array of capability objects")
	}
	if len(objs) == 0 {
		return nil, bad("cap must hold at least one capability")
	}
	caps := make([]Capability, 0, len(objs))
	for _, ms := range objs {
		var c Capability
		hasAction := false
		for _, m := range ms {
			switch m.Name {
			case "action":
				hasAction = true
				s, ok := wire.String(m)
				if !ok || !IsActionName(s) {
					return nil, errf(agentctx.CodeInvalidClaim, "ACT-A1", "cap", "action %s does not follow the action grammar (a-z, 0-9, _, - segments joined by dots)", m.Value)
				}
				c.Action = s
			case "constraints":
				if m.Kind != jsonx.Object {
					return nil, bad("constraints of %q must be an object", c.Action)
				}
				c.Constraints = m.Value
			}
		}
		if !hasAction {
			return nil, bad("a capability has no action")
		}
		for _, o := range caps {
			if o.Action == c.Action {
				return nil, bad("action %q is listed twice", c.Action)
			}
		}
		caps = append(caps, c)
	}
	return caps, nil
}

func parseDel(mem jsonx.Member) (*Delegation, error) {
	bad := func(format string, args ...any) error {
		return errf(agentctx.CodeInvalidClaim, "ACT-M9", "del", format, args...)
	}
	if mem.Kind != jsonx.Object {
		return nil, bad("del must be an object")
	}
	ms, err := jsonx.ParseObject(mem.Value)
	if err != nil {
		return nil, bad("del is not a valid object")
	}
	d := &Delegation{}
	var has struct{ depth, max, chain bool }
	for _, m := range ms {
		switch m.Name {
		case "depth", "max_depth":
			v, ok := jsonx.DecodeInt(m.Value)
			if m.Kind != jsonx.Number || !ok || v < 0 || v > 1<<20 {
				return nil, bad("del.%s must be a non-negative integer", m.Name)
			}
			if m.Name == "depth" {
				d.Depth, has.depth = int(v), true
			} else {
				d.MaxDepth, has.max = int(v), true
			}
		case "chain":
			has.chain = true
			links, ok := jsonx.ObjectsInArray(m.Value)
			if m.Kind != jsonx.Array || !ok {
				return nil, bad("del.chain must be an array of {iss, jti, hash} objects")
			}
			d.Chain = make([]Link, 0, len(links))
			for _, ms := range links {
				l, ok := parseLink(ms)
				if !ok {
					return nil, bad("del.chain entries need iss, a UUID jti and a hash value")
				}
				d.Chain = append(d.Chain, l)
			}
		}
	}
	if !has.depth || !has.max || !has.chain {
		return nil, bad("del needs depth, max_depth and chain")
	}
	if d.Chain == nil {
		d.Chain = []Link{}
	}
	return d, nil
}

func parseLink(ms []jsonx.Member) (Link, bool) {
	var l Link
	for _, m := range ms {
		var ok bool
		switch m.Name {
		case "iss":
			l.Issuer, ok = wire.String(m)
		case "jti":
			l.ID, ok = wire.String(m)
		case "hash":
			l.Hash, ok = wire.String(m)
		default:
			ok = true
		}
		if !ok {
			return Link{}, false
		}
	}
	return l, l.Issuer != "" && wire.IsUUID(l.ID) && wire.IsHash(l.Hash)
}

func parseOversight(mem jsonx.Member) (*Oversight, error) {
	bad := func(msg string) error { return errf(agentctx.CodeInvalidClaim, "ACT-M10", "oversight", "%s", msg) }
	if mem.Kind != jsonx.Object {
		return nil, bad("oversight must be an object")
	}
	ms, err := jsonx.ParseObject(mem.Value)
	if err != nil {
		return nil, bad("oversight is not a valid object")
	}
	o := &Oversight{}
	for _, m := range ms {
		switch m.Name {
		case "approval_required":
			v, ok := jsonx.DecodeStrings(m.Value)
			if m.Kind != jsonx.Array || !ok {
				return nil, bad("oversight.approval_required must be an array of action names")
			}
			for _, a := range v {
				if !IsActionName(a) {
					return nil, bad("oversight.approval_required holds an invalid action name")
				}
			}
			o.ApprovalRequired = v
		case "approver":
			s, ok := wire.String(m)
			if !ok {
				return nil, bad("oversight.approver must be a string")
			}
			o.Approver = s
		}
	}
	return o, nil
}

// jsonEqual reports whether two JSON values are equal as values: member
// order and white space aside, strings compared after unescaping, numbers
// compared exactly as decimal values at every depth (1, 1.0 and 1e0 are
// equal; 2^53 and 2^53+1 are not). Both are read with the strict reader.
func jsonEqual(a, b []byte) bool {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	if bytes.Equal(a, b) {
		return true
	}
	ka, kb := jsonx.KindOf(a), jsonx.KindOf(b)
	if ka != kb {
		return false
	}
	switch ka {
	case jsonx.Number:
		c, ok := numCmp(a, b)
		return ok && c == 0
	case jsonx.String:
		x, ok1 := jsonx.DecodeString(a)
		y, ok2 := jsonx.DecodeString(b)
		return ok1 && ok2 && x == y
	case jsonx.Array:
		x, ok1 := jsonx.Elements(a)
		y, ok2 := jsonx.Elements(b)
		if !ok1 || !ok2 || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case jsonx.Object:
		x, err1 := jsonx.ParseObject(a)
		y, err2 := jsonx.ParseObject(b)
		if err1 != nil || err2 != nil || len(x) != len(y) {
			return false
		}
		for _, m := range x {
			found := false
			for _, n := range y {
				if n.Name == m.Name {
					found = jsonEqual(m.Value, n.Value)
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return false // literals: equal bytes only
}

// numCmp compares two JSON numbers exactly as decimal values, without
// building big numbers (an exponent of a billion costs nothing); ok is false
// when either is not a JSON number.
func numCmp(a, b []byte) (int, bool) {
	x, ok1 := decimalOf(bytes.TrimSpace(a))
	y, ok2 := decimalOf(bytes.TrimSpace(b))
	if !ok1 || !ok2 {
		return 0, false
	}
	return x.cmp(y), true
}

// decimal is a number as sign, significant digits (no leading or trailing
// zeros) and exponent: value = 0.digits x 10^exp. Zero has no digits.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

const maxExp = 1 << 40 // exponents beyond are saturated (no JSON number of 8 KiB reaches them)

func decimalOf(n []byte) (decimal, bool) {
	if jsonx.KindOf(n) != jsonx.Number {
		return decimal{}, false
	}
	var d decimal
	i := 0
	if n[0] == '-' {
		d.neg, i = true, 1
	}
	var digits []byte
	var exp int64
	seenPoint := false
	for ; i < len(n) && n[i] != 'e' && n[i] != 'E'; i++ {
		c := n[i]
		if c == '.' {
			seenPoint = true
			continue
		}
		if !seenPoint {
			exp++
		}
		digits = append(digits, c)
	}
	if i < len(n) { // exponent
		i++
		sign := int64(1)
		if n[i] == '+' || n[i] == '-' {
			if n[i] == '-' {
				sign = -1
			}
			i++
		}
		var e int64
		for ; i < len(n); i++ {
			if e < maxExp {
				e = e*10 + int64(n[i]-'0')
			}
		}
		exp += sign * min(e, maxExp)
	}
	// Drop leading zeros (each one lowers the exponent) and trailing zeros.
	k := 0
	for k < len(digits) && digits[k] == '0' {
		k++
		exp--
	}
	digits = bytes.TrimRight(digits[k:], "0")
	if len(digits) == 0 {
		return decimal{}, true // zero, whatever its sign
	}
	d.digits, d.exp = string(digits), exp
	return d, true
}

func (x decimal) cmp(y decimal) int {
	switch {
	case x.digits == "" && y.digits == "":
		return 0
	case x.digits == "":
		return map[bool]int{true: 1, false: -1}[y.neg]
	case y.digits == "":
		return map[bool]int{true: -1, false: 1}[x.neg]
	case x.neg != y.neg:
		return map[bool]int{true: -1, false: 1}[x.neg]
	}
	mag := 0
	switch {
	case x.exp != y.exp:
		mag = map[bool]int{true: 1, false: -1}[x.exp > y.exp]
	default:
		for i := 0; i < max(len(x.digits), len(y.digits)) && mag == 0; i++ {
			a, b := byte('0'), byte('0')
			if i < len(x.digits) {
				a = x.digits[i]
			}
			if i < len(y.digits) {
				b = y.digits[i]
			}
			if a != b {
				mag = map[bool]int{true: 1, false: -1}[a > b]
			}
		}
	}
	if x.neg {
		return -mag
	}
	return mag
}
