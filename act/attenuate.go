package act

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
)

func escalation(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D3", "cap", format, args...)
}

// attenuates checks that child is no wider than parent (ACT-D3, ACT-D4):
// every action exists in the parent, exp does not outlive the parent's, the
// workflow is kept, and constraints only tighten.
func attenuates(parent, child *Mandate) error {
	for _, c := range child.Capabilities {
		p := parent.Capability(c.Action)
		if p == nil {
			return escalation("action %q is not in the parent mandate", c.Action)
		}
		if err := tightens(c.Action, p.Constraints, c.Constraints); err != nil {
			return err
		}
	}
	if child.Expiry.After(parent.Expiry) {
		return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D3", "exp", "delegated mandate outlives its parent by %s", child.Expiry.Sub(parent.Expiry))
	}
	if parent.WorkflowID != "" && !strings.EqualFold(parent.WorkflowID, child.WorkflowID) {
		return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D3", "wid", "delegated mandate leaves the parent's workflow %q", parent.WorkflowID)
	}
	return keepsOversight(parent, child)
}

// keepsOversight applies ACT-D4a: every action of the parent's
// approval_required that the child still holds stays in the child's, and the
// parent's approver is kept unchanged. A child may add actions.
func keepsOversight(parent, child *Mandate) error {
	po := parent.Oversight
	if po == nil {
		return nil
	}
	var co Oversight
	if child.Oversight != nil {
		co = *child.Oversight
	}
	for _, a := range po.ApprovalRequired {
		if child.Capability(a) != nil && !slices.Contains(co.ApprovalRequired, a) {
			return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D4a", "oversight", "delegated mandate drops the human approval its parent requires for %q", a)
		}
	}
	if po.Approver != "" && co.Approver != po.Approver {
		return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D4a", "oversight", "delegated mandate changes the approver %q its parent names", po.Approver)
	}
	return nil
}

// constraintMembers returns the members of a constraints object, in
// document order (none for absent constraints).
func constraintMembers(raw json.RawMessage) ([]jsonx.Member, bool) {
	if len(raw) == 0 {
		return nil, true
	}
	ms, err := jsonx.ParseObject(raw)
	return ms, err == nil
}

// tightens applies ACT-D4 to the constraints of one action: max_* numbers
// may only decrease, allowed_* arrays only shrink, deny_* arrays only grow;
// every parent key stays; any other key stays equal. A child may add keys.
// Violations are reported in the parent's member order.
func tightens(action string, parentRaw, childRaw json.RawMessage) error {
	parent, ok1 := constraintMembers(parentRaw)
	child, ok2 := constraintMembers(childRaw)
	if !ok1 || !ok2 {
		return escalation("constraints of %q are not an object", action)
	}
	for _, pm := range parent {
		k, pv := pm.Name, pm.Value
		var cv []byte
		for _, cm := range child {
			if cm.Name == k {
				cv = cm.Value
				break
			}
		}
		if cv == nil {
			return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D4", "cap", "constraint %q of %q was dropped", k, action)
		}
		var good bool
		switch {
		case strings.HasPrefix(k, "max_"):
			c, ok := numCmp(cv, pv)
			good = ok && c <= 0
		case strings.HasPrefix(k, "allowed_"):
			p, ok1 := jsonx.Elements(pv)
			c, ok2 := jsonx.Elements(cv)
			good = ok1 && ok2 && subset(c, p)
		case strings.HasPrefix(k, "deny_"):
			p, ok1 := jsonx.Elements(pv)
			c, ok2 := jsonx.Elements(cv)
			good = ok1 && ok2 && subset(p, c)
		default:
			good = jsonEqual(pv, cv)
		}
		if !good {
			return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D4", "cap", "constraint %q of %q is wider than the parent's", k, action)
		}
	}
	return nil
}

// subset reports whether every element of a is in b (as JSON values).
func subset(a, b [][]byte) bool {
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y []byte) bool { return jsonEqual(x, y) }) {
			return false
		}
	}
	return true
}
